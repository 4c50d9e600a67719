"""The Trainer: learning, exact resumption, checkpoints, averaging, early stopping."""

import itertools
import json
import time

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from aiayn.errors import ConfigError
from aiayn.models import load_pretrained
from aiayn.train import checkpoint as ckpt
from aiayn.train import trainer as trainer_module
from aiayn.train.config import TrainConfig
from aiayn.train.loss import LossOutput
from aiayn.train.trainer import Trainer

from conftest import records, tiny_train_config, train


def test_training_lowers_the_loss_and_writes_a_model_dir(number_data, tmp_path):
    out = tmp_path / "run"
    result = train(number_data, out, max_steps=40, valid_every=20, log_every=5)
    assert result.steps == 40 and "max_steps" in result.stopped_because
    losses = [r["loss"] for r in records(out, "train")]
    assert losses[-1] < 0.8 * losses[0], losses
    valid = records(out, "valid")
    assert [r["step"] for r in valid] == [20, 40]
    assert {"loss", "nll", "ppl", "bleu"} <= set(valid[0])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_config.json"):
        assert (out / name).is_file(), name
    assert load_pretrained(out).config.src_vocab_size <= 300
    task_config = json.loads((out / "task_config.json").read_text())
    assert task_config["task"] == "translation" and task_config["max_tokens"] == 400


# The input regularisers draw at batching time (token dropout from torch's generator, BPE-dropout
# from (seed, epoch)): a resumed run must draw the same. A late R-Drop (from step 6) must start
# at the run's step 6, not 6 steps into the resumed session. bf16 autocast must resume as
# exactly as fp32 on a CPU. With 1600-token batches an epoch is 7 steps: stopping at step 10
# and resuming continues epoch 2 (index 1) from its 4th batch, in the order epoch 2 shuffled.
@pytest.mark.parametrize(
    ("inputs", "steps", "stop", "stop_epoch"),
    [
        ({}, 8, 4, 0),
        ({"bpe_dropout": 0.2, "token_dropout": 0.1}, 8, 4, 0),
        ({"r_drop": 5.0, "r_drop_start_step": 6}, 8, 4, 0),
        ({"precision": "bf16"}, 8, 4, 0),
        ({"max_tokens": 1600}, 12, 10, 1),
    ],
    ids=["plain", "input-noise", "late-r-drop", "bf16", "mid-epoch-2"],
)
def test_resume_continues_exactly(number_data, tmp_path, inputs, steps, stop, stop_epoch):
    """N steps straight == `stop` steps, stop, resume, the rest (CPU, dropout on)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(number_data, straight, max_steps=steps, valid_every=stop, **inputs)
    train(number_data, split, max_steps=stop, valid_every=stop, **inputs)
    train(number_data, split, resume=True, max_steps=steps, valid_every=stop, **inputs)
    a = [(r["step_window"], r["loss"], r["lr"], r["epoch"]) for r in records(straight, "train")]
    b = [(r["step_window"], r["loss"], r["lr"], r["epoch"]) for r in records(split, "train")]
    assert len(a) == steps and a == b  # bit-identical losses
    epochs = [epoch for *_, epoch in a]
    assert epochs[stop - 1] == epochs[stop] == stop_epoch and epochs[0] == 0  # where it stopped
    precision = inputs.get("precision", "fp32")
    assert [r["precision"] for r in records(split, "start")] == [precision] * 2
    wa = load_file(str(ckpt.list_checkpoints(straight / "checkpoints")[-1].path / ckpt.WEIGHTS))
    wb = load_file(str(ckpt.list_checkpoints(split / "checkpoints")[-1].path / ckpt.WEIGHTS))
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_the_task_hears_each_updates_step_and_the_runs_minutes(number_data, tmp_path, monkeypatch):
    """set_progress: steps 1, 2, … before each update, continued by a resume, with the run's
    clock (which drives a late R-Drop by minutes)."""
    from aiayn.tasks.translation import TranslationTask

    heard = []
    original = TranslationTask.set_progress

    def spy(self, step, minutes):
        heard.append((step, minutes))
        original(self, step, minutes)

    monkeypatch.setattr(TranslationTask, "set_progress", spy)
    monkeypatch.setattr(trainer_module, "time", _FakeClock(tick=1.0))
    out = tmp_path / "run"
    train(number_data, out, max_steps=4, valid_every=4)
    monkeypatch.setattr(trainer_module, "time", _FakeClock(tick=1.0))  # a new process's clock
    train(number_data, out, resume=True, max_steps=7, valid_every=4)
    assert [step for step, _ in heard] == [1, 2, 3, 4, 5, 6, 7]
    minutes = [m for _, m in heard]
    assert all(a < b for a, b in itertools.pairwise(minutes))  # the resume kept the clock


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(number_data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="no checkpoint to resume"):
        train(number_data, out, resume=True)
    train(number_data, out, max_steps=3)
    with pytest.raises(ConfigError, match="pass --resume"):
        train(number_data, out, max_steps=3)


def test_keeps_last_k_plus_best_and_averages(number_data, tmp_path):
    out = tmp_path / "run"
    train(number_data, out, max_steps=10, valid_every=2, keep_last=2, average_last=2)
    kept = ckpt.list_checkpoints(out / "checkpoints")
    best = ckpt.read_best(out / "checkpoints")
    steps = [c.step for c in kept]
    assert steps[-2:] == [8, 10] and set(steps) <= {8, 10, best["step"]}
    # the exported model is the element-wise mean of the last two checkpoints
    w8, w10 = (load_file(str(c.path / ckpt.WEIGHTS)) for c in kept[-2:])
    exported = load_file(str(out / "model.safetensors"))
    for name, value in exported.items():
        assert_close(value, (w8[name] + w10[name]) / 2)
    assert records(out, "export")[0]["averaged_steps"] == [8, 10]


@pytest.mark.parametrize("average_last", [2, 4])
def test_averaging_the_first_half_of_a_run_is_warned(number_data, tmp_path, caplog, average_last):
    """Checkpoints 4-10 of a 10-step run reach back into its first half: warned, as on a slow
    machine whose step interval was tuned on a fast one. The last two (8, 10) are not."""
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="aiayn.train.trainer"):
        train(number_data, out, max_steps=10, valid_every=2, keep_last=4, average_last=average_last)
    warned = [r.getMessage() for r in caplog.records if "dilute" in r.getMessage()]
    if average_last == 2:
        assert warned == []
    else:
        assert len(warned) == 1 and "from step 4 on, of a 10-step run" in warned[0]


def test_early_stopping_when_validation_stops_improving(number_data, tmp_path):
    out = tmp_path / "run"
    # lr ≈ 0: the validation loss cannot improve after the first validation
    result = train(
        number_data, out, schedule="constant", peak_lr=1e-30, warmup_steps=1, max_steps=50,
        valid_every=2, patience=2,
    )  # fmt: skip
    assert result.steps == 6 and "early stopping" in result.stopped_because


def test_max_epochs_stops_after_whole_passes(number_data, tmp_path):
    out = tmp_path / "run"
    result = train(number_data, out, max_steps=None, max_epochs=1, valid_every=1000)
    assert result.epochs == 1 and "max_epochs" in result.stopped_because
    assert len(records(out, "valid")) == 1  # validated once, at the end


class _FakeClock:
    """`time` for the trainer, whose monotonic clock moves `tick` seconds per reading."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_cosine_over_minutes_anneals_at_the_deadline_and_resumes_on_the_run_clock(
    number_data, tmp_path, monkeypatch
):
    """decay_minutes: the lr follows the run's clock, not the step count, reaches min_lr at
    the deadline, and a resumed run continues that clock (max_minutes is the run's budget)."""
    out = tmp_path / "run"
    timed = dict(
        schedule="cosine", peak_lr=3e-3, warmup_steps=2, max_steps=None, decay_minutes=1.0,
        valid_every=1000, log_every=1,
    )  # fmt: skip
    monkeypatch.setattr(trainer_module, "time", _FakeClock(tick=1.0))
    first = train(number_data, out, max_minutes=0.5, **timed)
    assert "max_minutes" in first.stopped_because
    lrs = [r["lr"] for r in records(out, "train")]
    assert lrs[1] == pytest.approx(3e-3, rel=0.02)  # warmed up
    assert all(a >= b for a, b in itertools.pairwise(lrs[1:]))
    assert lrs[-1] == pytest.approx(1.5e-3, rel=0.1)  # half-way through the decay's minute

    monkeypatch.setattr(trainer_module, "time", _FakeClock(tick=1.0))  # a new process's clock
    second = train(number_data, out, resume=True, max_minutes=1.0, **timed)
    resumed = [r["lr"] for r in records(out, "train")][len(lrs) :]
    assert 0.7 * lrs[-1] < resumed[0] < lrs[-1]  # where it left off, not back at the peak
    assert resumed[-1] < 0.02 * 3e-3  # annealed at the run's deadline
    assert second.steps == pytest.approx(2 * first.steps, abs=2)  # the other half minute
    minutes = [r["minutes"] for r in records(out, "valid")]  # at each stop: the run's clock
    assert minutes[0] == pytest.approx(0.5, abs=0.05) and minutes[1] == pytest.approx(1, abs=0.05)


def test_validation_by_the_clock_follows_a_fixed_grid_across_a_resume(
    number_data, tmp_path, monkeypatch
):
    """valid_every_minutes: validations (and checkpoints) fall just after each whole interval
    of the run's clock, whatever the step rate; a resumed run continues that grid rather than
    restarting the interval at the resume. Stops validate off the grid, as ever."""
    out = tmp_path / "run"
    timed = dict(valid_every=None, valid_every_minutes=1.0, max_steps=None, keep_last=9)
    monkeypatch.setattr(trainer_module, "time", _FakeClock(tick=1.0))
    train(number_data, out, max_minutes=2.5, **timed)
    monkeypatch.setattr(trainer_module, "time", _FakeClock(tick=1.0))  # a new process's clock
    train(number_data, out, resume=True, max_minutes=5.0, **timed)
    minutes = [r["minutes"] for r in records(out, "valid")]
    assert len(minutes) == 6, minutes
    on_grid = [m for i, m in enumerate(minutes) if i not in (2, 5)]  # 2 and 5: the stops
    for m, grid in zip(on_grid, (1, 2, 3, 4), strict=True):
        assert grid <= m < grid + 0.25, minutes  # the resume does not shift 3 and 4 to 3.5, 4.5
    assert minutes[2] == pytest.approx(2.5, abs=0.25) and minutes[5] == pytest.approx(5, abs=0.25)
    steps = [r["step"] for r in records(out, "valid")]
    assert [c.step for c in ckpt.list_checkpoints(out / "checkpoints")] == steps


def test_validation_needs_a_step_or_a_minute_interval():
    with pytest.raises(ConfigError, match="valid_every_minutes"):
        tiny_train_config(valid_every=None)
    with pytest.raises(ConfigError, match=r"valid_every_minutes.*must be positive"):
        tiny_train_config(valid_every_minutes=0)


@pytest.mark.parametrize("compiler_works", [True, False], ids=["compiles", "compiler-fails"])
def test_compile_trains_as_eager_and_falls_back_when_the_compiler_fails(
    number_data, tmp_path, monkeypatch, compiler_works
):
    """--compile goes through torch.compile; a compiler that fails at the first forward (as a
    missing C++ toolchain does, lazily) leaves an eager run with the same losses, not a crash.
    The backends here are cheap stand-ins for inductor, which takes minutes on 2 cores."""
    compiled_graphs = []

    def backend(graph_module, example_inputs):
        compiled_graphs.append(graph_module)
        if not compiler_works:
            raise RuntimeError("no C++ compiler found")
        return graph_module.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend=backend))
    torch._dynamo.reset()
    with torch._dynamo.config.patch(suppress_errors=False):  # the Trainer's to set; restored
        train(number_data, tmp_path / "compiled", compile=True, max_steps=4, valid_every=4)
    torch._dynamo.reset()
    train(number_data, tmp_path / "eager", max_steps=4, valid_every=4)

    assert compiled_graphs  # the model did go through the compiler
    compiled = [r["loss"] for r in records(tmp_path / "compiled", "train")]
    eager = [r["loss"] for r in records(tmp_path / "eager", "train")]
    assert len(compiled) == 4
    assert compiled == pytest.approx(eager, rel=1e-5)


class _Batches:
    """Two one-example batches an epoch, as a `ResumableSampler`."""

    def __init__(self) -> None:
        self.epoch, self.index = 0, 0

    def __iter__(self):
        while self.index < 2:
            self.index += 1
            yield [self.index - 1]
        self.epoch, self.index = self.epoch + 1, 0

    def __len__(self) -> int:
        return 2

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]


class _ScoreTask:
    """A task of no translation at all: a linear model, and a validation "score" read from a
    script, better when higher (like an accuracy) — or lower, as the test says."""

    def __init__(self, scores: list[float], higher: bool = True) -> None:
        self.scores, self.higher, self.exported = list(scores), higher, []

    def train_sampler(self, rank, world_size):
        return _Batches()

    def collate(self, indices, device):
        return torch.ones(len(indices), 2, device=device)

    def set_progress(self, step, minutes):
        pass

    def loss(self, model, batch):
        out = model(batch).pow(2).sum()
        return LossOutput(out, out.detach(), batch.shape[0])

    def validate(self, model):
        self.last = self.scores.pop(0)
        return {"score": self.last}

    def higher_is_better(self, metric):
        if metric != "score":
            raise ConfigError(f"best_metric '{metric}' is not a metric of this task; use score")
        return self.higher

    def export(self, model, directory):
        self.exported.append(self.last)


@pytest.mark.parametrize("higher", [True, False], ids=["higher-is-better", "lower-is-better"])
def test_the_task_says_which_way_its_metric_improves(tmp_path, higher):
    """The Trainer asks the task whether its best_metric is better higher or lower, and keeps
    and exports the best accordingly (no schedule here needs the model's width)."""
    scores = [0.2, 0.5, 0.4, 0.9, 0.1, 0.3]
    task = _ScoreTask(scores, higher)
    config = TrainConfig(
        schedule="constant", peak_lr=1e-3, warmup_steps=1, max_steps=6, valid_every=1,
        keep_last=1, best_metric="score", log_every=1, device="cpu",
    )  # fmt: skip
    result = Trainer(torch.nn.Linear(2, 1), task, config, tmp_path / "run", progress=False).fit()
    best = max(scores) if higher else min(scores)
    assert (result.best, result.best_step) == (best, scores.index(best) + 1)
    assert task.exported == ([0.2, 0.5, 0.9] if higher else [0.2, 0.1])  # each new best
    kept = [c.step for c in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert kept == sorted({scores.index(best) + 1, 6})  # the last, and the best


def test_a_metric_the_task_lacks_and_noam_without_d_model_fail_before_training(tmp_path):
    model, config = torch.nn.Linear(2, 1), TrainConfig(best_metric="bleu", device="cpu")
    with pytest.raises(ConfigError, match="not a metric of this task"):
        Trainer(model, _ScoreTask([]), config, tmp_path / "a")
    config = config.replace(best_metric="score")  # the noam schedule, the default
    with pytest.raises(ConfigError, match="d_model"):
        Trainer(model, _ScoreTask([]), config, tmp_path / "b")
    assert Trainer(model, _ScoreTask([]), config, tmp_path / "c", d_model=64).d_model == 64
