"""Faults lose nothing (issue 30): non-finite updates, signals, crashes mid-save, a full disk,
corrupt weights, an output directory that is not the run's, a finished run resumed.

Most tests train a 3-weight linear regression (`LinearTask`) in-process, which takes
milliseconds a step; those about exact resumption with dropout and RNG use the tiny
translation model of conftest.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from aiayn.cli import main
from aiayn.errors import AiaynError, ConfigError
from aiayn.io import DiskFullError, atomic_path, atomic_write_text
from aiayn.models.serialization import save_weights, verify_weights
from aiayn.tasks.translation.task import TranslationTask
from aiayn.train import checkpoint as ckpt
from aiayn.train.config import TrainConfig
from aiayn.train.loss import LossOutput
from aiayn.train.trainer import DivergedError, Interrupted, Trainer

from conftest import files, records, train

# --- a task small enough to train in-process in milliseconds ----------------------------------


class _InfGrad(torch.autograd.Function):
    """The identity forward, an infinite gradient backward: a finite loss, non-finite grads."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class _Sampler:
    """Four two-example batches an epoch, as a `ResumableSampler`."""

    def __init__(self) -> None:
        self.epoch, self.index = 0, 0

    def __iter__(self):
        while self.index < 4:
            self.index += 1
            yield [2 * self.index - 2, 2 * self.index - 1]
        self.epoch, self.index = self.epoch + 1, 0

    def __len__(self) -> int:
        return 4

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]


class LinearTask:
    """y = x·w + noise on 8 fixed examples. `poison`: the updates (1-based loss calls) whose
    loss is NaN ("nan_loss") or whose gradient is infinite ("inf_grad")."""

    def __init__(self, poison=(), mode="nan_loss") -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(8, generator=g)
        self.poison, self.mode = set(poison), mode
        self.calls = 0
        self.weights_seen: list[torch.Tensor] = []  # the weights at each loss call
        self.steps_heard: list[int] = []

    def train_sampler(self, rank, world_size):
        return _Sampler()

    def collate(self, indices, device):
        return torch.tensor(indices, device=device)

    def set_progress(self, step, minutes):
        self.steps_heard.append(step)

    def loss(self, model, batch):
        self.calls += 1
        self.weights_seen.append(flat(model))
        pred = model(self.x[batch]).squeeze(-1)
        if self.calls in self.poison and self.mode == "inf_grad":
            pred = _InfGrad.apply(pred)
        loss = (pred - self.y[batch]).pow(2).sum()
        if self.calls in self.poison and self.mode == "nan_loss":
            loss = loss * float("nan")
        return LossOutput(loss, loss.detach(), len(batch))

    def validate(self, model):
        with torch.no_grad():
            return {"loss": float((model(self.x).squeeze(-1) - self.y).pow(2).mean())}

    def higher_is_better(self, metric):
        return False

    def export(self, model, directory):
        with atomic_path(directory / "model.safetensors") as tmp:
            save_weights(model, tmp)


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def linear_config(**overrides) -> TrainConfig:
    fields = dict(
        schedule="constant", peak_lr=0.05, warmup_steps=1, max_steps=6, valid_every=3,
        log_every=1, keep_last=3, device="cpu",
    )  # fmt: skip
    fields.update(overrides)
    return TrainConfig(**fields)


def linear_trainer(out: Path, task=None, **overrides) -> Trainer:
    torch.manual_seed(0)
    task = task if task is not None else LinearTask()
    return Trainer(nn.Linear(3, 1), task, linear_config(**overrides), out, progress=False)


def fit(out: Path, resume=False, task=None, **overrides):
    return linear_trainer(out, task, **overrides).fit(resume=resume)


def checkpoint_weights(out: Path, step: int | None = None) -> dict[str, torch.Tensor]:
    found = ckpt.list_checkpoints(out / "checkpoints")
    chosen = found[-1] if step is None else next(c for c in found if c.step == step)
    return load_file(str(chosen.path / ckpt.WEIGHTS))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# --- 1. non-finite updates ----------------------------------------------------------------------


def test_a_nan_loss_is_skipped_counted_and_never_reaches_the_weights(tmp_path, caplog):
    task = LinearTask(poison={3, 4})
    with caplog.at_level("WARNING", logger="aiayn.train.trainer"):
        result = fit(tmp_path / "run", task=task)
    assert result.steps == 6 and result.skipped_steps == 2
    assert task.calls == 8  # 6 steps + 2 skipped updates
    # a skipped update changes nothing: the next one starts from the same weights, at the
    # same step number (so the same lr)
    assert torch.equal(task.weights_seen[2], task.weights_seen[3])
    assert torch.equal(task.weights_seen[3], task.weights_seen[4])
    assert not torch.equal(task.weights_seen[1], task.weights_seen[2])
    assert task.steps_heard == [1, 2, 3, 3, 3, 4, 5, 6]
    warned = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warned) == 2 and "non-finite loss" in warned[0]
    train_records = records(tmp_path / "run", "train")
    assert [r["skipped_steps"] for r in train_records] == [0, 0, 2, 0, 0, 0]
    # Adam saw 6 steps; every checkpoint holds finite weights and moments
    for c in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints"):
        state = ckpt.load_checkpoint(c, nn.Linear(3, 1))
        assert all(torch.isfinite(t).all() for t in load_file(str(c.path / ckpt.WEIGHTS)).values())
        adam = state["optimizer"]["state"]
        assert {int(s["step"]) for s in adam.values()} == {c.step}
        assert all(torch.isfinite(s["exp_avg_sq"]).all() for s in adam.values())
        assert state["trainer"]["skipped"] == 2


def test_an_infinite_gradient_of_a_finite_loss_is_skipped_too(tmp_path):
    task = LinearTask(poison={2}, mode="inf_grad")
    result = fit(tmp_path / "run", task=task, max_steps=3)
    assert result.skipped_steps == 1 and result.steps == 3
    assert torch.equal(task.weights_seen[1], task.weights_seen[2])
    assert all(torch.isfinite(t).all() for t in checkpoint_weights(tmp_path / "run").values())


@pytest.mark.parametrize("mode", ["inf_grad", "nan_loss"])
def test_with_a_loss_scaler_overflowing_gradients_stay_the_scalers_business(tmp_path, mode):
    """fp16's GradScaler skips a step whose gradients overflowed and lowers its scale: that is
    no bad update. A non-finite loss is one all the same (and the scale still drops)."""
    task = LinearTask(poison={2}, mode=mode)
    trainer = linear_trainer(tmp_path / "run", task, max_steps=3)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    result = trainer.fit()
    assert trainer.scaler.get_scale() == 2.0**9  # the overflow halved it
    assert torch.equal(task.weights_seen[1], task.weights_seen[2])  # no step either way
    if mode == "inf_grad":  # the scaler's: counted as a step, as fp16 training always has
        assert (result.skipped_steps, result.steps, task.calls) == (0, 3, 3)
    else:
        assert (result.skipped_steps, result.steps, task.calls) == (1, 3, 4)


def test_a_run_of_bad_updates_stops_with_what_to_do(tmp_path):
    out = tmp_path / "run"
    task = LinearTask(poison=set(range(5, 100)))
    with pytest.raises(DivergedError) as err:
        fit(out, task=task, max_steps=20, max_bad_steps=3)
    message = str(err.value)
    assert isinstance(err.value, AiaynError)  # the CLI prints it on one line
    assert (
        "3 updates in a row after step 4" in message and "the last checkpoint is step 3" in message
    )
    for advice in ("Lower the learning rate", "fp32", "check the training data", "--resume"):
        assert advice in message, advice
    assert task.calls == 4 + 3
    assert records(out, "diverged")[0]["skipped_in_a_row"] == 3
    assert [c.step for c in ckpt.list_checkpoints(out / "checkpoints")] == [3]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


# Under DDP rank 1 alone sees a NaN: its loss reaches every rank in the summed loss, so both
# ranks skip the same update and stay replicas.
DDP_NAN = """
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, sys.argv[1])
from test_faults import LinearTask, linear_config  # noqa: E402

from aiayn.train.trainer import Trainer  # noqa: E402

rank = int(__import__("os").environ["RANK"])
torch.manual_seed(0)
task = LinearTask(poison={2} if rank == 1 else set())
trainer = Trainer(nn.Linear(3, 1), task, linear_config(max_steps=4, valid_every=4),
                  Path(sys.argv[2]), progress=False)
result = trainer.fit()
weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist()
Path(sys.argv[2], f"rank{rank}.json").write_text(
    json.dumps([result.skipped_steps, result.steps, weights])
)
"""


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend")
def test_under_ddp_every_rank_skips_the_update_one_rank_found_bad(tmp_path):
    script = tmp_path / "ddp_nan.py"
    script.write_text(DDP_NAN)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(Path(__file__).parent), str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0][:2] == ranks[1][:2] == [1, 4]
    assert ranks[0][2] == ranks[1][2]  # still replicas


# --- 2. SIGTERM / SIGINT ----------------------------------------------------------------------


def _signal_at_step(monkeypatch, signum: int, at: int) -> None:
    """Deliver `signum` (to the handler fit() installed) just before update `at`."""
    original = TranslationTask.set_progress

    def set_progress(self, step, minutes):
        if step == at:
            handler = signal.getsignal(signum)
            assert callable(handler), "fit() installed no handler"
            handler(signum, None)
        original(self, step, minutes)

    monkeypatch.setattr(TranslationTask, "set_progress", set_progress)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_the_step_and_a_resume_continues_exactly(
    number_data, tmp_path, monkeypatch, signum
):
    """Signalled before update 5 of 8: update 5 finishes, a checkpoint of step 5 is written
    (no validation), the run raises Interrupted (exit 128 + signal); --resume then gives the
    losses, weights and kept checkpoints of a run never interrupted (dropout on)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(number_data, straight, max_steps=8, valid_every=4)
    before = signal.getsignal(signum)
    with monkeypatch.context() as patch:
        _signal_at_step(patch, signum, at=5)
        with pytest.raises(Interrupted) as caught:
            train(number_data, split, max_steps=8, valid_every=4)
    assert caught.value.exit_code == 128 + signum and caught.value.step == 5
    assert "--resume" in str(caught.value) and signal.Signals(signum).name in str(caught.value)
    assert signal.getsignal(signum) == before  # the old handler is back
    found = ckpt.list_checkpoints(split / "checkpoints")
    assert [(c.step, c.interrupted) for c in found] == [(4, False), (5, True)]
    assert records(split, "interrupt")[0]["step"] == 5
    assert [r["step"] for r in records(split, "valid")] == [4]

    train(number_data, split, resume=True, max_steps=8, valid_every=4)
    a = [(r["step_window"], r["loss"], r["lr"]) for r in records(straight, "train")]
    b = [(r["step_window"], r["loss"], r["lr"]) for r in records(split, "train")]
    assert len(a) == 8 and a == b  # bit-identical
    assert_same_weights(checkpoint_weights(straight), checkpoint_weights(split))
    # the interrupt's checkpoint made way once a regular one followed
    assert [c.step for c in ckpt.list_checkpoints(split / "checkpoints")] == [4, 8]


def test_a_second_signal_stops_at_once(tmp_path):
    trainer = linear_trainer(tmp_path / "run")
    trainer._catch_signals()
    try:
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, None)  # the first asks for a checkpoint after the step
        with pytest.raises(Interrupted) as caught:
            handler(signal.SIGTERM, None)
    finally:
        trainer._restore_signals()
    assert caught.value.exit_code == 143 and caught.value.checkpoint is None
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


MODEL_FLAGS = ["--preset", "tiny", "--vocab-size", "300", "--max-len", "64"]


def cli_train_args(data: Path, out: Path, *extra: str) -> list[str]:
    src, tgt, vsrc, vtgt = files(data)
    return [
        "train", "--train-src", str(src), "--train-tgt", str(tgt), "--valid-src", str(vsrc),
        "--valid-tgt", str(vtgt), "--out", str(out), *MODEL_FLAGS, "--max-tokens", "400",
        "--schedule", "inverse_sqrt", "--peak-lr", "1e-3", "--warmup-steps", "5",
        "--log-every", "1", "--no-progress", *extra,
    ]  # fmt: skip


def test_sigterm_to_aiayn_train_exits_143_with_a_checkpoint_to_resume(number_data, tmp_path):
    """What a cluster scheduler does before preempting: SIGTERM, then (later) SIGKILL."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiayn",
         *cli_train_args(number_data, out, "--max-steps", "5000", "--valid-every", "5000")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ((out / "metrics.jsonl").is_file() and len(records(out, "train")) >= 2):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "SIGTERM" in stderr and "--resume" in stderr
    (last,) = ckpt.list_checkpoints(out / "checkpoints")
    assert last.interrupted and last.step == records(out, "interrupt")[0]["step"]
    assert last.step >= 2 and last.step == len(records(out, "train"))  # every step logged
    done = subprocess.run(
        [sys.executable, "-m", "aiayn", *cli_train_args(
            number_data, out, "--max-steps", str(last.step + 2), "--valid-every", "5000",
            "--resume")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == last.step + 2


# --- 3. a fault at each stage of writing a checkpoint -----------------------------------------


class Fault(Exception):
    """Injected: the process dies here (the cleanup a crash skips is checked apart)."""


def _half_then(raise_: BaseException):
    """A save_weights that writes half a file, then fails."""

    def save(weights, path):
        save_weights(weights, path)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise raise_

    return save


def _inject(monkeypatch, stage: str, directory: Path) -> None:
    real_rename, real_fsync, real_torch_save = os.rename, ckpt.fsync_path, torch.save

    def fail(*args, **kwargs):
        raise Fault(stage)

    if stage == "temp-dir-made":
        monkeypatch.setattr(ckpt, "save_weights", fail)
    elif stage == "weights-half-written":
        monkeypatch.setattr(ckpt, "save_weights", _half_then(Fault(stage)))
    elif stage == "state-half-written":

        def half_state(obj, f):
            real_torch_save(obj, f)
            f.truncate(f.tell() // 2)
            raise Fault(stage)

        monkeypatch.setattr(torch, "save", half_state)
    elif stage == "files-written-not-flushed":
        monkeypatch.setattr(ckpt, "fsync_path", fail)
    elif stage == "before-rename":

        def rename(src, dst):
            if Path(dst).parent == directory and Path(dst).name.startswith("step_"):
                raise Fault(stage)
            real_rename(src, dst)

        monkeypatch.setattr(os, "rename", rename)
    elif stage == "after-rename-before-fsync":

        def fsync(path):
            if Path(path) == directory:
                raise Fault(stage)
            real_fsync(path)

        monkeypatch.setattr(ckpt, "fsync_path", fsync)
    else:
        raise AssertionError(stage)


STAGES = [
    "temp-dir-made", "weights-half-written", "state-half-written", "files-written-not-flushed",
    "before-rename", "after-rename-before-fsync",
]  # fmt: skip


@pytest.mark.parametrize("stage", STAGES)
def test_a_fault_mid_save_keeps_the_last_good_checkpoint_and_resume_continues(
    tmp_path, monkeypatch, stage
):
    straight, out = tmp_path / "straight", tmp_path / "run"
    fit(straight, max_steps=6)
    fit(out, max_steps=3)
    with monkeypatch.context() as patch:
        _inject(patch, stage, out / "checkpoints")
        with pytest.raises(Fault):
            fit(out, resume=True, max_steps=6)
    found = ckpt.list_checkpoints(out / "checkpoints")
    # after the rename the new checkpoint is whole (every file was flushed before it)
    renamed = stage == "after-rename-before-fsync"
    assert [c.step for c in found] == ([3, 6] if renamed else [3])
    assert hidden(out / "checkpoints") == []  # no temporary directory left behind
    for c in found:  # nothing half-written is listed: each loads, its digest checks out
        assert verify_weights(c.path / ckpt.WEIGHTS)
        assert ckpt.load_checkpoint(c, nn.Linear(3, 1))["trainer"]["step"] == c.step

    result = fit(out, resume=True, max_steps=6)
    assert (result.steps, result.stopped_because) == (6, "reached max_steps=6")
    assert_same_weights(checkpoint_weights(straight, 6), checkpoint_weights(out, 6))
    assert_same_weights(load_file(str(straight / "model.safetensors")),
                        load_file(str(out / "model.safetensors")))  # fmt: skip
    last_session = [r["loss"] for r in records(out, "train")][-3:]
    assert last_session == [r["loss"] for r in records(straight, "train")][3:]


def test_resaving_a_step_is_atomic_too(tmp_path, monkeypatch):
    """The last step is saved again when an epoch ends there: the old directory is moved
    aside, the new one renamed in. A failure between the two puts the old one back; a kill
    there (no cleanup) leaves the old one standing in for the step."""
    directory = tmp_path / "checkpoints"
    old_model, new_model = nn.Linear(3, 1), nn.Linear(3, 1)
    state, meta = {"trainer": {"step": 3}}, {"epoch": 0, "metrics": {}}
    ckpt.save_checkpoint(directory, 3, old_model, state, meta)
    real_rename, renames = os.rename, []

    def rename(src, dst):
        renames.append(Path(dst).name)
        if len(renames) == 2:  # the old one is aside; the new one not yet in place
            raise Fault("between the renames")
        real_rename(src, dst)

    def holds(checkpoint, model):
        loaded = nn.Linear(3, 1)
        ckpt.load_checkpoint(checkpoint, loaded)
        return torch.equal(flat(loaded), flat(model))

    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", rename)
        with pytest.raises(Fault):
            ckpt.save_checkpoint(directory, 3, new_model, state, {**meta, "epoch": 1})
    (found,) = ckpt.list_checkpoints(directory)
    assert found.path.name == "step_00000003" and holds(found, old_model)
    assert hidden(directory) == []

    # as a kill -9 between the renames leaves it: the old one aside, the new one unrenamed
    (directory / "step_00000003").rename(directory / ".old-step_00000003-99")
    shutil.copytree(directory / ".old-step_00000003-99", directory / ".tmp-step_00000003-99")
    (found,) = ckpt.list_checkpoints(directory)
    assert found.step == 3 and found.path.name == ".old-step_00000003-99"
    assert holds(found, old_model) and found.meta()["epoch"] == 0
    ckpt.prune(directory, keep_last=1)  # the stand-in is no stale leftover; the tmp is
    assert ckpt.list_checkpoints(directory) == [found]
    assert hidden(directory) == [".old-step_00000003-99"]
    ckpt.save_checkpoint(directory, 3, new_model, state, {**meta, "epoch": 1})
    ckpt.prune(directory, keep_last=1)
    (found,) = ckpt.list_checkpoints(directory)
    assert found.path.name == "step_00000003" and found.meta()["epoch"] == 1
    assert holds(found, new_model) and hidden(directory) == []


# --- 4. a full disk --------------------------------------------------------------------------


def _enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullFile:
    """A file that takes half of what is written, then reports a full disk."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, data):
        self.f.write(bytes(data)[: len(data) // 2])
        raise _enospc()

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _full_open(path, mode):
    return _FullFile(open(path, mode))  # _FullFile closes it


@pytest.mark.parametrize("file", [ckpt.WEIGHTS, ckpt.STATE])
def test_a_full_disk_while_saving_a_checkpoint_names_it_and_keeps_the_last(
    tmp_path, monkeypatch, file
):
    out = tmp_path / "run"
    fit(out, max_steps=3)
    with monkeypatch.context() as patch:
        if file == ckpt.WEIGHTS:
            patch.setattr(ckpt, "save_weights", _half_then(_enospc()))
        else:  # torch.save writing into the file object, as the disk fills
            patch.setattr(ckpt, "open", _full_open, raising=False)
        with pytest.raises(DiskFullError) as err:
            fit(out, resume=True, max_steps=6)
    message = str(err.value)
    assert isinstance(err.value, AiaynError)
    assert str(out / "checkpoints" / "step_00000006") in message and file in message
    assert "disk full" in message and "free on its file system" in message
    assert "--resume" in message
    (last,) = ckpt.list_checkpoints(out / "checkpoints")
    assert last.step == 3 and verify_weights(last.path / ckpt.WEIGHTS)
    assert hidden(out / "checkpoints") == []
    assert fit(out, resume=True, max_steps=6).steps == 6  # space freed: the run goes on


def test_a_full_disk_while_writing_an_output_file_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "notes.txt"
    path.write_text("old")

    def fsync(fd):
        raise _enospc()

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", fsync)
        with pytest.raises(DiskFullError, match=r"notes\.txt: disk full \(.* free"):
            atomic_write_text(path, "new text")
    with (
        pytest.raises(DiskFullError, match=r"model\.safetensors: disk full"),
        atomic_path(tmp_path / "model.safetensors") as tmp,
    ):
        tmp.write_bytes(b"half")
        raise _enospc()
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_full_disk_in_aiayn_average_is_one_line_and_keeps_the_model(
    tmp_path, monkeypatch, capsys
):
    from aiayn.models import serialization

    run = tmp_path / "run"
    fit(run, max_steps=6)
    model_dir = tmp_path / "averaged"
    assert main(["average", "--run", str(run), "--last", "2", "--out", str(model_dir)]) == 0
    before = (model_dir / "model.safetensors").read_bytes()
    capsys.readouterr()

    def full(tensors, path, metadata=None):
        Path(path).write_bytes(b"\0" * 10)
        raise _enospc()

    monkeypatch.setattr(serialization, "save_file", full)
    assert main(["average", "--run", str(run), "--last", "1", "--out", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full" in err and "model.safetensors" in err
    assert (model_dir / "model.safetensors").read_bytes() == before
    assert hidden(model_dir) == []


# --- 5. corrupt weights in a run --------------------------------------------------------------


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # the last tensor's data (the header comes first)
    path.write_bytes(bytes(raw))


def test_checkpoints_and_their_average_carry_a_verified_digest(tmp_path):
    out = tmp_path / "run"
    fit(out, max_steps=6, ema_decay=0.9)
    found = ckpt.list_checkpoints(out / "checkpoints")
    for c in found:
        assert verify_weights(c.path / ckpt.WEIGHTS) and verify_weights(c.path / ckpt.EMA_WEIGHTS)
    assert verify_weights(out / "model.safetensors")  # the export (the EMA)
    averaged = ckpt.average_checkpoints(found, tmp_path / "avg.safetensors")
    assert verify_weights(averaged)

    _flip(found[-1].path / ckpt.EMA_WEIGHTS)
    with pytest.raises(ConfigError, match="checksum mismatch") as err:
        fit(out, resume=True, max_steps=9, ema_decay=0.9)
    assert str(found[-1].path / ckpt.EMA_WEIGHTS) in str(err.value)
    _flip(found[-1].path / ckpt.WEIGHTS)
    with pytest.raises(ConfigError, match="checksum mismatch") as err:
        ckpt.load_checkpoint(found[-1], nn.Linear(3, 1))
    assert "delete it to resume from the previous one" in str(err.value)
    corrupt = re.escape(str(found[-1].path / ckpt.WEIGHTS))
    with pytest.raises(ConfigError, match=f"{corrupt}.*checksum mismatch"):
        ckpt.average_checkpoints(found, tmp_path / "avg2.safetensors")
    assert not (tmp_path / "avg2.safetensors").exists()


# --- 6. the output directory ------------------------------------------------------------------


def test_train_into_a_file_is_a_one_line_error(number_data, tmp_path, capsys):
    target = tmp_path / "model.bin"
    target.write_text("a user's file")
    for out in (target, target / "sub"):
        assert main(cli_train_args(number_data, out, "--max-steps", "2")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file" in err and str(out) in err
    assert target.read_text() == "a user's file"


def test_train_into_someone_elses_directory_needs_force(number_data, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "metrics.jsonl").write_text('{"split": "train", "step": 999}\n')
    (out / "notes.txt").write_text("keep me")
    args = cli_train_args(number_data, out, "--max-steps", "2", "--valid-every", "2")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--force" in err
    assert (out / "config.json").read_text() == '{"mine": true}'
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl", "notes.txt"]

    assert main([*args, "--force"]) == 0
    assert json.loads((out / "config.json").read_text()).get("mine") is None  # replaced
    assert (out / "notes.txt").read_text() == "keep me"
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged[0]["split"] == "start" and all(r.get("step") != 999 for r in logged)


def test_a_fresh_run_starts_a_new_metrics_log(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"split": "train", "step": 999}\n')
    fit(out, max_steps=3)
    assert [r["step_window"] for r in records(out, "train")] == [1, 1, 1]
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["split"] == "start"


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_resuming_a_finished_run_changes_nothing(number_data, tmp_path):
    out = tmp_path / "run"
    train(number_data, out, max_steps=4, valid_every=2)
    before = _snapshot(out)
    time.sleep(0.01)  # so that any rewrite would show in the mtimes
    result = train(number_data, out, resume=True, max_steps=4, valid_every=2)
    assert (result.steps, result.stopped_because) == (4, "already reached max_steps=4")
    assert result.last_valid is not None and "bleu" in result.last_valid
    after = _snapshot(out)
    assert after.keys() == before.keys()
    for name in before:
        # task_config.json is rewritten (same bytes) by the translation task before the
        # Trainer runs; every file the Trainer owns is untouched
        if name != "task_config.json":
            assert after[name] == before[name], name
        assert after[name][1] == before[name][1], name
    # a higher limit trains on
    more = train(number_data, out, resume=True, max_steps=6, valid_every=2)
    assert more.steps == 6 and [r["step"] for r in records(out, "valid")] == [2, 4, 6]


def test_resuming_an_early_stopped_run_changes_nothing(tmp_path):
    out = tmp_path / "run"
    stopped = dict(peak_lr=1e-30, max_steps=50, valid_every=1, patience=2)
    first = fit(out, **stopped)
    assert "early stopping" in first.stopped_because
    before = _snapshot(out)
    again = fit(out, resume=True, **stopped)
    assert again.stopped_because.startswith("already stopped early") and again.steps == first.steps
    assert _snapshot(out) == before
    assert fit(out, resume=True, **{**stopped, "patience": 3}).steps == first.steps + 1


def test_resuming_a_run_killed_before_its_export_exports_without_training(tmp_path):
    out = tmp_path / "run"
    fit(out, max_steps=4, valid_every=2, keep_last=2, average_last=2)
    exported = load_file(str(out / "model.safetensors"))
    # as if killed after the last checkpoint: no export, no end record
    (out / "model.safetensors").unlink()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["split"] == "end"
    (out / "metrics.jsonl").write_text("\n".join(lines[:-2]) + "\n")  # (-2: the export record)
    n_train = len(records(out, "train"))
    result = fit(out, resume=True, max_steps=4, valid_every=2, keep_last=2, average_last=2)
    assert (result.steps, result.stopped_because) == (4, "reached max_steps=4")
    assert len(records(out, "train")) == n_train  # nothing trained
    assert_same_weights(load_file(str(out / "model.safetensors")), exported)
    assert records(out, "end")[-1]["steps"] == 4


# --- 7. aiayn average -------------------------------------------------------------------------


def test_average_of_a_missing_or_empty_run_says_so(tmp_path, capsys):
    missing = tmp_path / "nope"
    args = ["--last", "2", "--out", str(tmp_path / "avg")]
    assert main(["average", "--run", str(missing), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{missing}: no such run directory" in err
    (tmp_path / "empty").mkdir()
    assert main(["average", "--run", str(tmp_path / "empty"), *args]) == 2
    err = capsys.readouterr().err
    assert "no checkpoints" in err and "--last must be" not in err
    assert not (tmp_path / "avg").exists()


def test_another_ranks_token_files_do_not_make_a_fresh_out_someone_elses(tmp_path):
    # under torchrun every rank builds OUT/data/*.tokens at once: rank 0's check may see them
    from aiayn.train.checkpoint import check_out_dir

    out = tmp_path / "run"
    (out / "data").mkdir(parents=True)
    for name in ("train.tokens", "train.tokens.json", ".train.tokens.1.ab.tmp"):
        (out / "data" / name).write_text("")
    check_out_dir(out, resume=False)  # a fresh run's own data: no error
    (out / "data" / "corpus.txt").write_text("a user's data")
    with pytest.raises(ConfigError, match="not empty"):
        check_out_dir(out, resume=False)
