"""Runs as a user launches them: kill -9 mid-training, and 2-process DDP on CPU (gloo)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder
from aiayn.train import checkpoint as ckpt

from conftest import files

MODEL_FLAGS = ["--preset", "tiny", "--vocab-size", "300", "--max-len", "64"]


def train_args(data, out, *extra):
    src, tgt, vsrc, vtgt = files(data)
    return [
        "train", "--train-src", str(src), "--train-tgt", str(tgt), "--valid-src", str(vsrc),
        "--valid-tgt", str(vtgt), "--out", str(out), *MODEL_FLAGS, "--max-tokens", "400",
        "--schedule", "inverse_sqrt", "--peak-lr", "1e-3", "--warmup-steps", "5",
        "--log-every", "1", "--no-progress", *extra,
    ]  # fmt: skip


def test_kill_minus_9_always_leaves_the_last_checkpoint_loadable(number_data, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(0)
    resume: list[str] = []
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiayn", *train_args(
                number_data, out, "--max-steps", "500", "--valid-every", "1", "--keep-last", "2",
                *resume)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        before = len(ckpt.list_checkpoints(out / "checkpoints"))
        while len(ckpt.list_checkpoints(out / "checkpoints")) <= before:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint appeared"
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
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ckpt.list_checkpoints(out / "checkpoints")[-1].step == found[-1].step + 2


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend")
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(number_data, tmp_path):
    """DDP over 2 ranks (each its own batch) == 1 process accumulating both batches, and so
    is the EMA of the weights, which rank 0 alone keeps."""
    common = ["--max-steps", "3", "--valid-every", "3", "--dropout", "0", "--device", "cpu"]
    common += ["--ema-decay", "0.5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "aiayn", *train_args(number_data, tmp_path / "ddp", *common)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, "-m", "aiayn",
         *train_args(number_data, tmp_path / "one", *common, "--update-freq", "2")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    for weights in (ckpt.WEIGHTS, ckpt.EMA_WEIGHTS):
        a = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_00000003" / weights))
        b = load_file(str(tmp_path / "one" / "checkpoints" / "step_00000003" / weights))
        assert a.keys() == b.keys()
        for name in a:
            assert_close(a[name], b[name], atol=2e-5, rtol=1e-4)
    # only rank 0 wrote logs: one line per step, not two
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert sum('"split": "train"' in line for line in lines) == 3
