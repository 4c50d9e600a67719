"""Language-model throughput: aiayn's `DecoderOnly` against HF `GPT2LMHeadModel`, same shape.

Both contenders are GPT-2 blocks (pre-LN, tanh-GELU, learned positions, biases, tied output
layer) with the same dimensions and dropout, random weights:
  aiayn    `DecoderOnly` with the gpt2 preset's switches
  hf_gpt2  `GPT2LMHeadModel(GPT2Config(...))`, its default attention (SDPA)

Training: one full step — forward, cross-entropy over every position (fp32 logits), backward,
fused AdamW — on the same batch of `context`-token windows, fp32 or bf16 autocast.
Generation: the same prompts, exactly `new_tokens` new tokens per row (no end token), with the
KV cache, greedy or sampling (temperature 1, top-k 50): aiayn `generate_tokens`, HF `generate`
with `min_new_tokens = max_new_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.models import DecoderOnly, presets
from aiayn.models.info import estimate_lm_flops
from benchmarks.measure import PeakMemory, autocast_for, median_seconds


@dataclass(frozen=True)
class LMDims:
    """Model and workload sizes of one language-model benchmark row."""

    layers: int
    d_model: int
    heads: int
    vocab: int
    context: int
    batch: int  # training: windows per step
    prompt_len: int = 1
    new_tokens: int = 256  # generated per row (capped to fit the context)

    @property
    def d_ff(self) -> int:
        return 4 * self.d_model

    def config(self):
        return presets.gpt2(
            self.vocab, n_layers=self.layers, d_model=self.d_model, n_heads=self.heads,
            d_ff=self.d_ff, max_len=self.context, dropout=0.1,
        )  # fmt: skip

    @property
    def generated(self) -> int:
        """New tokens per row: `new_tokens`, or fewer when the context is shorter."""
        return min(self.new_tokens, self.context - self.prompt_len)


LM_SIZES = {
    # nanoGPT's Shakespeare-char "baby GPT" (the recipe's model): 10.7M parameters.
    "shakespeare": LMDims(6, 384, 6, 65, 256, batch=16),
    # GPT-2 small, 124.4M parameters; short windows so a CPU step takes seconds, not minutes.
    "gpt2": LMDims(12, 768, 12, 50257, 1024, batch=2, prompt_len=16),
    # Seconds-long smoke run for CI.
    "tiny": LMDims(1, 32, 2, 100, 32, batch=2, new_tokens=8),
}
#: GPT-2 small trains on shorter windows than its context here (CPU time).
TRAIN_LEN = {"gpt2": 256}


def lm_forward_flops(dims: LMDims, T: int) -> int:
    """Forward matmul FLOPs of one window of T tokens (`aiayn.models.info.estimate_lm_flops`:
    projections, FFN, logits, and the whole (T, T) attention square, as dense kernels compute
    the masked half too)."""
    return estimate_lm_flops(dims.config(), T).forward


def build(contender: str, dims: LMDims) -> nn.Module:
    torch.manual_seed(0)
    if contender == "aiayn":
        return DecoderOnly(dims.config())
    if contender == "hf_gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(
            vocab_size=dims.vocab, n_positions=dims.context, n_embd=dims.d_model,
            n_layer=dims.layers, n_head=dims.heads, n_inner=dims.d_ff,
            resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, pad_token_id=0,
            bos_token_id=2, eos_token_id=2,
        )  # fmt: skip
        return GPT2LMHeadModel(cfg)
    raise ValueError(f"unknown contender {contender!r}")


def _logits(model: nn.Module, ids: Tensor) -> Tensor:
    out = model(ids)
    return out if isinstance(out, Tensor) else out.logits


def lm_train_rate(
    contender: str, size: str, precision: str, device: str, warmup: int, reps: int
) -> dict:
    """Training tokens/s, MFU numerator and peak memory of one full step."""
    dims = LM_SIZES[size]
    T = TRAIN_LEN.get(size, dims.context)
    model = build(contender, dims).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    ids = torch.randint(3, dims.vocab, (dims.batch, T + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]  # (B, T) each
    autocast = autocast_for(precision, device)

    def step() -> None:
        with autocast:
            logits = _logits(model, x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with PeakMemory(device) as mem:
        seconds = median_seconds(step, warmup, reps, device)
    return {
        "tokens_per_s": round(dims.batch * T / seconds, 1),
        "step_ms": round(seconds * 1e3, 2),
        "flops_per_s": 3 * lm_forward_flops(dims, T) * dims.batch / seconds,
        "peak_mem_mib": mem.mib,
        "params": sum(p.numel() for p in model.parameters()),
    }


def lm_generate_rate(
    contender: str, size: str, batch: int, sample: bool, device: str, warmup: int, reps: int
) -> dict:
    """New tokens/s and peak memory of generating `dims.generated` tokens for `batch` prompts."""
    dims = LM_SIZES[size]
    model = build(contender, dims).to(device).eval()
    n = dims.generated
    prompts = torch.randint(3, dims.vocab, (batch, dims.prompt_len), device=device)
    run = _generator(contender, model, prompts, n, sample)
    with PeakMemory(device) as mem:
        seconds = median_seconds(run, warmup, reps, device)
    lengths = run()
    if set(lengths) != {n}:
        raise RuntimeError(f"{contender} generated {sorted(set(lengths))} tokens, expected {n}")
    # each new token: the weights once, attention over the prefix (≈ half the window on average)
    flops = sum(lm_forward_flops(dims, 1) + dims.layers * 4 * (dims.prompt_len + t) *
                dims.d_model for t in range(n)) * batch  # fmt: skip
    return {
        "tokens_per_s": round(batch * n / seconds, 1),
        "run_ms": round(seconds * 1e3, 2),
        "flops_per_s": flops / seconds,
        "peak_mem_mib": mem.mib,
    }


def _generator(contender: str, model: nn.Module, prompts: Tensor, n: int, sample: bool):
    """A call generating n tokens per prompt, returning each row's number of new tokens."""
    if contender == "aiayn":
        from aiayn.decode.generation import generate_tokens
        from aiayn.decode.sampling import SamplingConfig

        sampling = SamplingConfig(temperature=1.0, top_k=50) if sample else SamplingConfig(0.0)
        rows = prompts.tolist()

        def run() -> list[int]:
            out = generate_tokens(model, rows, n, sampling, eos_id=None, seed=0)
            return [len(r) for r in out]

        return run

    options = dict(do_sample=True, top_k=50, temperature=1.0) if sample else dict(do_sample=False)

    @torch.inference_mode()
    def run_hf() -> list[int]:
        out = model.generate(
            prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=n,
            min_new_tokens=n, pad_token_id=0, **options,
        )  # fmt: skip
        return [out.shape[1] - prompts.shape[1]] * prompts.shape[0]

    return run_hf
