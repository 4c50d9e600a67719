"""Runs as a user launches them: kill -9 mid-training, and 2-process DDP on CPU (gloo)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file
from torch.testing import assert_close

from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder
from aiayn.train import checkpoint as ckpt

from conftest import files

MODEL_FLAGS = ["--preset", "tiny", "--vocab-size", "300", "--max-len", "64"]
#: Waits below end when their condition holds; this only stops a hung run from hanging CI.
HANG_GUARD_S = 600


def train_args(data, out, *extra):
    src, tgt, vsrc, vtgt = files(data)
    return [
        "train", "--train-src", str(src), "--train-tgt", str(tgt), "--valid-src", str(vsrc),
        "--valid-tgt", str(vtgt), "--out", str(out), *MODEL_FLAGS, "--max-tokens", "400",
        "--schedule", "inverse_sqrt", "--peak-lr", "1e-3", "--warmup-steps", "5",
        "--log-every", "1", "--no-progress", "--device", "cpu", *extra,
    ]  # fmt: skip


def last_checkpoint_step(out) -> int:
    found = ckpt.list_checkpoints(out / "checkpoints")
    return found[-1].step if found else 0


def test_kill_minus_9_always_leaves_the_last_checkpoint_loadable(number_data, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(0)
    resume: list[str] = []
    for attempt in range(3):
        log = tmp_path / f"stderr_{attempt}.txt"  # a file, not a pipe nobody reads: never full
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiayn", *train_args(
                    number_data, out, "--max-steps", "500", "--valid-every", "1",
                    "--keep-last", "2", *resume)],
                stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        # Wait for this session's first checkpoint: a step past the last one (their count
        # says nothing, as pruning keeps it at keep_last), however slow the machine.
        before = last_checkpoint_step(out)
        deadline = time.monotonic() + HANG_GUARD_S
        while last_checkpoint_step(out) <= before:
            assert proc.poll() is None, log.read_text()
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"attempt {attempt}: no checkpoint in {HANG_GUARD_S} s (hung?)")
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))  # land anywhere: mid-step, mid-save, mid-prune
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found = ckpt.list_checkpoints(out / "checkpoints")
        assert found, f"attempt {attempt}: no complete checkpoint survived"
        cfg = ModelConfig.load(out / "config.json")
        state = ckpt.load_checkpoint(found[-1], EncoderDecoder(cfg))
        assert state["trainer"]["step"] == found[-1].step
        resume = ["--resume"]
    # and the run resumes to completion from what the last kill left
    done = subprocess.run(
        [sys.executable, "-m", "aiayn", *train_args(
            number_data, out, "--max-steps", str(found[-1].step + 2), "--valid-every", "1",
            "--keep-last", "2", "--resume")],
        capture_output=True, text=True, timeout=HANG_GUARD_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ckpt.list_checkpoints(out / "checkpoints")[-1].step == found[-1].step + 2


# The single-process reference for DDP with dropout. Rank r seeds torch with seed + r
# (Trainer.fit) and draws its dropout masks from that stream, so the second micro-batch of a
# plain `--update-freq 2` run, whose masks continue rank 0's stream, cannot match rank 1's.
# This runs `aiayn` with micro-batch r of each update drawing from its own stream, seeded
# seed + r and carried over from update to update, as rank r's is; it writes the number of
# micro-batches it saw to argv[1].
PER_RANK_RNG = """
import sys
from pathlib import Path

import torch

from aiayn.cli import main
from aiayn.tasks.translation.task import TranslationTask

SEED, RANKS = 1, 2
streams, calls = {}, [0]
collate = TranslationTask.collate


def per_rank_collate(self, indices, device):
    n = calls[0]
    calls[0] += 1
    if n:
        streams[(n - 1) % RANKS] = torch.get_rng_state()  # where the last micro-batch left it
    rank = n % RANKS
    if rank in streams:
        torch.set_rng_state(streams[rank])
    elif n:
        torch.manual_seed(SEED + rank)  # rank 0's is the one Trainer.fit seeded
    return collate(self, indices, device)


TranslationTask.collate = per_rank_collate
code = main(sys.argv[2:])
Path(sys.argv[1]).write_text(str(calls[0]))
sys.exit(code)
"""


@pytest.mark.parametrize("dropout", ["0", "0.1"], ids=["no-dropout", "dropout"])
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(
    number_data, tmp_path, dropout
):
    """DDP over 2 ranks (each its own batch) == 1 process accumulating both batches, and so
    is the EMA of the weights, which rank 0 alone keeps. With dropout on, the one process
    draws each micro-batch's masks from the stream of the rank that trains it (PER_RANK_RNG)."""
    common = ["--max-steps", "3", "--valid-every", "3", "--dropout", dropout, "--seed", "1"]
    common += ["--ema-decay", "0.5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "aiayn", *train_args(number_data, tmp_path / "ddp", *common)],
        capture_output=True, text=True, timeout=HANG_GUARD_S, env=env,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    args = train_args(number_data, tmp_path / "one", *common, "--update-freq", "2")
    calls = tmp_path / "micro_batches.txt"
    launch = [sys.executable, "-m", "aiayn"]
    if dropout != "0":
        launch = [sys.executable, "-c", PER_RANK_RNG, str(calls)]
    single = subprocess.run(
        [*launch, *args], capture_output=True, text=True, timeout=HANG_GUARD_S, env=env
    )
    assert single.returncode == 0, single.stderr[-3000:]
    if dropout != "0":
        assert calls.read_text() == "6"  # 3 updates of 2 micro-batches, each on its stream
    for weights in (ckpt.WEIGHTS, ckpt.EMA_WEIGHTS):
        a = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_00000003" / weights))
        b = load_file(str(tmp_path / "one" / "checkpoints" / "step_00000003" / weights))
        assert a.keys() == b.keys()
        for name in a:
            assert_close(a[name], b[name], atol=2e-5, rtol=1e-4)
    # only rank 0 wrote logs: one line per step, not two
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert sum('"split": "train"' in line for line in lines) == 3
