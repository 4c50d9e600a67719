"""On a CUDA GPU: mixed-precision training, the fused attention kernels, and resumption.

The CPU tests pin device="cpu" (their bit-exact checks hold for CPU arithmetic); these are
their GPU counterparts, with tolerances instead of bit equality where CUDA's kernels round
differently (autocast) or sum in a varying order (atomics in the embedding's backward).
Self-contained (no conftest imports): a tiny model on generated number words, seconds a run.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
from torch.amp import GradScaler
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.testing import assert_close

from aiayn.config import ModelConfig
from aiayn.data.number_words import make_splits, write_splits
from aiayn.models import EncoderDecoder
from aiayn.nn.attention import scaled_dot_product_attention
from aiayn.nn.masks import padding_mask
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.train.config import TrainConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
TINY_MODEL = ModelConfig.create(
    d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, dropout=0.1,
    max_len=64,
)  # fmt: skip
TINY_TASK = TranslationConfig(vocab_size=300, max_len=64, max_tokens=400, valid_beam=1)


@pytest.fixture(scope="module")
def number_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("numbers")
    write_splits(make_splits(600, 16, 16, seed=3), out)
    return out


def train_on_cuda(data: Path, out: Path, model=TINY_MODEL, resume=False, **overrides):
    """Train the tiny model on the GPU; the run's metrics.jsonl records."""
    fields = dict(
        schedule="inverse_sqrt", peak_lr=3e-3, warmup_steps=5, max_steps=8, valid_every=4,
        log_every=1, keep_last=3, device="cuda",
    )  # fmt: skip
    fields.update(overrides)
    train_translation(
        data / "train.en", data / "train.de", data / "valid.en", data / "valid.de", out, model,
        TrainConfig(**fields), TINY_TASK, resume=resume, progress=False,
    )  # fmt: skip
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def split(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r["split"] == name]


# --- mixed precision ------------------------------------------------------------------------

#: Autocast loss vs fp32 loss, relative, when both runs make the same updates. Step 1 runs the
#: same weights on the same batch, so only rounding separates them; later steps follow updates
#: that rounded differently. bf16 keeps 8 significant bits, fp16 11 (2^-9 and 2^-12 relative
#: per value), and a loss averages ~400 tokens' terms: on a CPU these runs stayed within 2e-4
#: (bf16) and 1e-4 (fp16) of fp32. 1% leaves a wide margin, while the loss falls ~20% over the
#: 8 steps and a broken cast gives inf/NaN, an untrained model or a skipped update (~2%).
AUTOCAST_REL_TOL = 1e-2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_training_tracks_fp32(number_data, tmp_path, monkeypatch, precision):
    """The same 8 updates (same batches; dropout off, as CUDA's masks need not match across
    dtypes) in fp32 and in `precision`: finite losses within AUTOCAST_REL_TOL of fp32's, and so
    is the validation loss. fp16's loss scaler starts at 2^7 here so that no update overflows
    and is skipped (the Trainer's 2^16 skips the first few: the next test)."""
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(GradScaler, init_scale=128.0))
    model = TINY_MODEL.replace(dropout=0.0)
    runs = {}
    for p in ("fp32", precision):
        records = train_on_cuda(number_data, tmp_path / p, model, precision=p)
        assert [r["precision"] for r in split(records, "start")] == [p]
        runs[p] = [r["loss"] for r in split(records, "train")], split(records, "valid")[-1]
    (ref, ref_valid), (low, low_valid) = runs["fp32"], runs[precision]
    assert len(low) == 8 and all(math.isfinite(x) for x in low), low
    assert low == pytest.approx(ref, rel=AUTOCAST_REL_TOL)
    assert low_valid["loss"] == pytest.approx(ref_valid["loss"], rel=AUTOCAST_REL_TOL)
    assert ref[-1] < 0.9 * ref[0]  # fp32 learned: there is a trajectory to track


def test_fp16_with_the_trainers_loss_scaler_trains(number_data, tmp_path):
    """fp16 as the Trainer runs it: its GradScaler starts at 2^16 on a loss summed over the
    batch's tokens, so the first updates' scaled gradients overflow and are skipped (their
    grad_norm is logged as inf) until the scale has halved enough (on a CPU simulation: 6 of
    the first 7). The run must stay finite and train all the same."""
    records = split(train_on_cuda(number_data, tmp_path / "fp16", precision="fp16", max_steps=16,
                                  valid_every=16), "train")  # fmt: skip
    losses = [r["loss"] for r in records]
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses), losses
    assert sum(math.isfinite(r["grad_norm"]) for r in records) >= 4  # updates were made
    assert losses[-1] < 0.9 * losses[0], losses


# --- fused attention ------------------------------------------------------------------------

#: Fused kernel (flash / memory-efficient) vs the math path computed in fp32 from the same
#: inputs. fp32: both exact up to summation order (~1e-6). fp16/bf16: the kernels round the
#: output and the softmax weights (before P·V) to the input dtype: a half ulp is 2^-11 (fp16)
#: and 2^-8 (bf16) relative, for outputs of magnitude ≤ ~4; the tolerances leave ~5× on that.
ATTENTION_TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}
FUSED = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


def padded_batch_mask(batch: int, length: int) -> torch.Tensor:
    """Key padding of a batch whose rows hold length, length - 5, … real tokens:
    (batch, 1, 1, length), True = may attend."""
    ids = torch.ones(batch, length, dtype=torch.long, device=CUDA)
    for row in range(batch):
        ids[row, length - 5 * row :] = 0
    return padding_mask(ids, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", ["causal", "padded"])
def test_fused_attention_equals_the_math_path(case, dtype):
    """SDPA restricted to its flash and memory-efficient kernels (it raises if neither fits)
    equals the math path: outputs, and the gradients of q, k and v. Causal: the decoder's
    is_causal call (flash where the dtype allows); padded: a key-padding mask (the encoder's,
    memory-efficient kernel)."""
    torch.manual_seed(0)
    B, H, T, DH = 4, 4, 48, 32  # lengths and head size the fused kernels align to
    q, k, v = (torch.randn(B, H, T, DH, device=CUDA, dtype=dtype) for _ in range(3))
    mask = padded_batch_mask(B, T) if case == "padded" else None
    causal = case == "causal"
    grad_out = torch.randn(B, H, T, DH, device=CUDA)

    def run(impl, inputs):
        inputs = [x.detach().requires_grad_() for x in inputs]
        out, _ = scaled_dot_product_attention(*inputs, mask, impl=impl, is_causal=causal)
        out.float().backward(grad_out)
        return [out.detach().float(), *(x.grad.float() for x in inputs)]

    with sdpa_kernel(FUSED):
        fused = run("sdpa", (q, k, v))
    reference = run("math", (q.float(), k.float(), v.float()))
    tol = ATTENTION_TOL[dtype]
    for name, a, b in zip(("out", "dq", "dk", "dv"), fused, reference, strict=True):
        scale = float(b.abs().max())  # gradients grow with T: tolerances relative to the size
        assert_close(a, b, atol=tol * max(scale, 1.0), rtol=tol, msg=f"{case} {dtype} {name}")


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_the_model_computes_the_same_logits_with_sdpa_as_with_math(autocast):
    """The encoder-decoder as it trains on a GPU (attention_impl "sdpa": SDPA's choice of
    kernel) against the same weights with the math path, on a padded batch."""
    torch.manual_seed(0)
    cfg = TINY_MODEL.replace(src_vocab_size=50, tgt_vocab_size=50, dropout=0.0)
    math_model = EncoderDecoder(cfg.replace(attention_impl="math")).to(CUDA).eval()
    sdpa_model = EncoderDecoder(cfg.replace(attention_impl="sdpa")).to(CUDA).eval()
    sdpa_model.load_state_dict(math_model.state_dict())
    src = torch.randint(3, 50, (4, 21), device=CUDA)
    tgt = torch.randint(3, 50, (4, 17), device=CUDA)
    for row in range(1, 4):  # rows of decreasing length, pad-filled
        src[row, 21 - 4 * row :] = 0
        tgt[row, 17 - 3 * row :] = 0
    context = torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast)
    with torch.no_grad(), context:
        a, b = sdpa_model(src, tgt), math_model(src, tgt)  # (B, T, V) each
    tol = ATTENTION_TOL[torch.bfloat16 if autocast else torch.float32]
    assert torch.isfinite(a).all()
    scale = float(b.float().abs().max())
    assert_close(a.float(), b.float(), atol=tol * max(scale, 1.0), rtol=tol)


# --- resumption -----------------------------------------------------------------------------

#: Two CUDA runs of the same steps differ by float noise (~1e-6 relative): the embedding's
#: backward and some reductions sum with atomics, in a varying order. A resume that redrew the
#: dropout masks (a lost CUDA RNG state), restarted the schedule or lost Adam's moments moves a
#: loss by ~1e-2 or more.
RESUME_REL_TOL = 1e-4


def test_resume_on_cuda_continues_the_run(number_data, tmp_path):
    """8 steps straight == 4 steps, stop, resume, 4 more (dropout on: the CUDA RNG resumes)."""
    straight = train_on_cuda(number_data, tmp_path / "straight", max_steps=8)
    train_on_cuda(number_data, tmp_path / "split", max_steps=4)
    resumed = train_on_cuda(number_data, tmp_path / "split", resume=True, max_steps=8)
    assert [r["resume"] for r in split(resumed, "start")] == [False, True]
    a, b = split(straight, "train"), split(resumed, "train")
    assert [r["step_window"] for r in b] == [1] * 8 and len(a) == 8
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=RESUME_REL_TOL)
    valid_a, valid_b = split(straight, "valid")[-1], split(resumed, "valid")[-1]
    assert valid_b["loss"] == pytest.approx(valid_a["loss"], rel=RESUME_REL_TOL)
