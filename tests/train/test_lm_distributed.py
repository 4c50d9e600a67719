"""A language model trained data-parallel as a user launches it (`torchrun … aiayn train lm`,
2 gloo processes on the CPU): DDP equals one process accumulating the same windows, and FSDP
(`--fsdp`) equals DDP, resumes exactly, and writes the same checkpoints and model directory."""

import json
import os
import random
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from aiayn.cli import main
from aiayn.data.lm_blocks import WindowSampler
from aiayn.models.serialization import load_pretrained
from aiayn.train import checkpoint as ckpt

# A 2-layer GPT without biases: a key bias gets no gradient (softmax ignores a constant per
# query), so Adam would turn its float noise into lr-sized steps that differ between any two
# reduction orders.
MODEL = {"n_layers": 2, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16, "dropout": 0.0,
         "bias": False}  # fmt: skip
BATCH, CONTEXT, STEPS = 4, 16, 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_dist")
    rng = random.Random(0)
    who = ["the king", "a fool", "my lord", "the queen", "good sir"]
    verb = ["speaks", "weeps", "laughs", "sleeps", "sings"]
    lines = [f"{rng.choice(who)} {rng.choice(verb)} at night." for _ in range(300)]
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = {"preset": "gpt-mini", "model": MODEL}
    (root / "recipe.json").write_text(json.dumps(recipe), encoding="utf-8")
    return root


def train_args(data, out, *extra, steps=STEPS):
    """`aiayn train lm` on the tiny model: AdamW with decay, clipping and an EMA, so that each
    of them must come out the same; validation and a checkpoint every 2 steps."""
    return [
        "train", "lm", "--train-text", str(data / "train.txt"), "--config",
        str(data / "recipe.json"), "--out", str(out), "--batch-size", str(BATCH), "--context",
        str(CONTEXT), "--valid-batches", "2", "--schedule", "inverse_sqrt", "--peak-lr", "1e-2",
        "--warmup-steps", "2", "--weight-decay", "0.1", "--clip-norm", "1.0", "--ema-decay",
        "0.5", "--max-steps", str(steps), "--valid-every", "2", "--log-every", "1", "--device",
        "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def torchrun(data, out, *extra, steps=STEPS):
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "aiayn", *train_args(data, out, *extra, steps=steps)],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def alone(data, out, *extra):
    assert main(train_args(data, out, *extra)) == 0
    return out


@pytest.fixture(scope="module")
def ddp(data, tmp_path_factory):
    return torchrun(data, tmp_path_factory.mktemp("ddp") / "run")


@pytest.fixture(scope="module")
def fsdp(data, tmp_path_factory):
    return torchrun(data, tmp_path_factory.mktemp("fsdp") / "run", "--fsdp")


def weights(run, step, name=ckpt.WEIGHTS):
    return load_file(str(run / ckpt.CHECKPOINTS_DIR / f"step_{step:08d}" / name))


def training_state(run, step):
    path = run / ckpt.CHECKPOINTS_DIR / f"step_{step:08d}" / ckpt.STATE
    return torch.load(path, weights_only=True)


def assert_same_weights(a, b, exact=False):
    """The checkpoints of runs `a` and `b` hold the same weights and EMA at every step."""
    for step in (2, STEPS):
        for name in (ckpt.WEIGHTS, ckpt.EMA_WEIGHTS):
            wa, wb = weights(a, step, name), weights(b, step, name)
            assert wa.keys() == wb.keys()
            for key in wa:
                if exact:
                    assert torch.equal(wa[key], wb[key]), (step, name, key)
                else:
                    assert_close(wa[key], wb[key], atol=2e-5, rtol=1e-4, msg=f"{step} {key}")


def records(run, split):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def assert_same_logs(a, b):
    """The same training losses and gradient norms (Adam's steps hardly change if the
    gradients are off by a constant factor; the logged norm does), and the same validation."""
    ta, tb = records(a, "train"), records(b, "train")
    assert len(ta) == len(tb) == STEPS  # under torchrun only rank 0 logs: one line a step
    for x, y in zip(ta, tb, strict=True):
        assert x["step_window"] == y["step_window"] == 1
        for key in ("loss", "nll", "grad_norm", "lr"):
            assert x[key] == pytest.approx(y[key], rel=1e-5), key
    va, vb = records(a, "valid"), records(b, "valid")
    assert [r["step"] for r in va] == [r["step"] for r in vb] == [2, STEPS]
    for x, y in zip(va, vb, strict=True):
        for metric in ("loss", "ppl", "bpc"):
            assert x[metric] == pytest.approx(y[metric], rel=1e-5)


def test_two_ranks_deal_the_windows_of_one_process_taking_two_batches_a_step(ddp):
    """The premise of the next test: rank r's batch k is the one process's batch 2k + r."""
    n_tokens = training_state(ddp, 2)["sampler"]["n_tokens"]  # the run's own stream
    one = WindowSampler(n_tokens, CONTEXT, BATCH, seed=1).epoch_offsets(0)
    ranks = [WindowSampler(n_tokens, CONTEXT, BATCH, seed=1, rank=r, world_size=2) for r in (0, 1)]
    r0, r1 = (s.epoch_offsets(0) for s in ranks)
    assert len(r0) >= STEPS
    assert (one[0 : 2 * STEPS : 2] == r0[:STEPS]).all()
    assert (one[1 : 2 * STEPS : 2] == r1[:STEPS]).all()
    assert not (r0[:STEPS] == r1[:STEPS]).all()  # the ranks do train on different windows


def test_ddp_lm_equals_one_process_accumulating_both_ranks_windows(ddp, data, tmp_path):
    """2 gloo ranks, a micro-batch each, == 1 process with update_freq 2 over the same
    windows: weights, EMA, training logs and validation. Gradients not averaged over the
    ranks leave rank 0's weights those of its own windows; gradients off by a factor (not
    normalised by both ranks' tokens) show in the logged gradient norm."""
    single = alone(data, tmp_path / "one", "--update-freq", "2")
    assert_same_weights(ddp, single)
    assert_same_logs(ddp, single)


def test_fsdp_equals_ddp_and_writes_the_same_files(ddp, fsdp):
    """--fsdp (parameters, gradients and Adam's moments sharded over the 2 ranks) trains the
    same weights, EMA and validation as DDP, into whole-tensor checkpoints of the same layout:
    model.safetensors (the tied output matrix once), the optimiser state numbered as
    `optimizer.state_dict()` numbers it, and a model directory that loads alone."""
    assert_same_weights(ddp, fsdp)
    assert_same_logs(ddp, fsdp)
    for step in (2, STEPS):
        a, b = training_state(ddp, step), training_state(fsdp, step)
        assert a.keys() == b.keys()
        assert a["sampler"] == b["sampler"] and a["ema_updates"] == b["ema_updates"] == step
        oa, ob = a["optimizer"], b["optimizer"]
        assert oa["param_groups"] == ob["param_groups"]  # hyper-parameters and numbering
        assert oa["state"].keys() == ob["state"].keys()
        for i, moments in oa["state"].items():
            assert moments.keys() == ob["state"][i].keys()
            for key, value in moments.items():
                assert_close(value, ob["state"][i][key], atol=1e-7, rtol=1e-4)
    # the decoder-only model's output layer is its embedding, stored once
    assert "generator.weight" not in weights(fsdp, STEPS)
    # the exported model (the best EMA) loads on its own and gives DDP's logits
    model_ddp, model_fsdp = load_pretrained(ddp).eval(), load_pretrained(fsdp).eval()
    assert model_fsdp.generator.weight is model_fsdp.decoder.embed.weight
    ids = torch.randint(0, model_ddp.config.vocab_size, (2, CONTEXT))
    with torch.no_grad():
        assert_close(model_fsdp(ids), model_ddp(ids), atol=1e-5, rtol=1e-4)


def test_fsdp_resumes_exactly(data, fsdp, tmp_path):
    """Stopped at step 2 and resumed (weights, optimiser state and EMA gathered to rank 0's
    files, then scattered back into the shards), --fsdp reaches the uninterrupted run's step
    4 bit for bit."""
    out = torchrun(data, tmp_path / "run", "--fsdp", steps=2)
    torchrun(data, out, "--fsdp", "--resume")
    assert_same_weights(out, fsdp, exact=True)
    a, b = training_state(out, STEPS), training_state(fsdp, STEPS)
    for i, moments in a["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(value, b["optimizer"]["state"][i][key]), (i, key)
    assert [r["resume"] for r in records(out, "start")] == [False, True]
