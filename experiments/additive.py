"""Why a dot product and not additive (Bahdanau) attention? (QUESTIONS.md 3)

    python -m experiments.additive --out docs/why     # 11 minutes on 1 of 2 shared CPU cores

1. Quality at equal size: the same encoder-decoder (2+2 layers, d_model 128, 4 heads) trained
   on the number-words task for the same steps, every attention (encoder self, decoder self,
   cross) scoring by q·k/√d_k or by vᵀ tanh(q + k) (`aiayn.nn.additive_attention`: W_Q and W_K
   are Bahdanau's W and U, plus one v of Dh entries per head — 128 parameters per attention,
   0.1% of the model). The additive model starts from the same W_Q, W_K, W_V, W_O.
2. Cost: one self-attention layer (d_model 128, 4 heads, batch 4, fp32), forward + backward, at
   sequence lengths 16 … 256: wall time (median of 3) and the bytes autograd keeps for the
   backward pass. Dot product through the reference (math) path and the fused kernel (SDPA);
   additive materialises a Dh-vector per (query, key) pair, (B, H, T, S, Dh).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.nn.additive_attention import AdditiveAttention
from aiayn.nn.attention import MultiHeadAttention
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import (
    fresh_data,
    greedy_exact_match,
    last_valid,
    read_split,
    small_model,
    trained_model,
    valid_loss_panel,
)

KINDS = ("dot (math)", "dot (SDPA)", "additive")


def make_additive(model: EncoderDecoder) -> None:
    """Every attention of the model scores additively, keeping its projections."""
    for stack in (model.encoder, model.decoder):
        for block in stack.layers:
            for name in ("self_attn", "cross_attn"):
                old = getattr(block, name)
                if old is None:
                    continue
                new = AdditiveAttention(old.d_model, old.n_heads, old.dropout, impl=old.impl)
                new.w_q, new.w_k, new.w_v, new.w_o = old.w_q, old.w_k, old.w_v, old.w_o
                setattr(block, name, new)


def _layer(kind: str, d_model: int, heads: int) -> MultiHeadAttention:
    if kind == "additive":
        return AdditiveAttention(d_model, heads)
    return MultiHeadAttention(d_model, heads, impl="sdpa" if "SDPA" in kind else "math")


def cost(kind: str, length: int, reps: int, batch: int = 4, d_model: int = 128,
         heads: int = 4) -> dict[str, float]:  # fmt: skip
    """Median forward+backward milliseconds of one self-attention layer, and the MiB of tensors
    autograd saves for the backward (activation memory)."""
    layer = _layer(kind, d_model, heads)
    x = torch.randn(batch, length, d_model, requires_grad=True)  # (B, T, D)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, _ = layer(x)
    out.sum().backward()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        out, _ = layer(x)
        out.sum().backward()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"ms": 1000 * times[len(times) // 2], "saved_mib": sum(saved) / 2**20}


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    steps = 6 if smoke else 300
    runs = out / "additive_runs"
    data = fresh_data(runs, smoke, seed)
    src, ref = read_split(data, "valid")
    figures: dict[str, Any] = {"steps": steps, "training": {}}
    for kind, alter in (("dot", None), ("additive", make_additive)):
        start = time.perf_counter()
        model, tokenizers, curve = trained_model(data, runs / kind, small_model(), steps, seed,
                                                 alter=alter)  # fmt: skip
        figures["training"][kind] = {
            **curve,
            "minutes": (time.perf_counter() - start) / 60,
            "parameters": model.num_parameters(),
            "exact_match": greedy_exact_match(model, tokenizers, src, ref),
        }
    lengths = [16, 32] if smoke else [16, 32, 64, 128, 256]
    torch.manual_seed(seed)
    figures["cost"] = {
        "lengths": lengths,
        **{kind: [cost(kind, n, 1 if smoke else 3) for n in lengths] for kind in KINDS},
    }
    t, c = figures["training"], figures["cost"]
    figures["answer"] = (
        f"After {steps} steps: dot product {last_valid(t['dot'])}, additive "
        f"{last_valid(t['additive'])} (validation loss, greedy exact match), with "
        f"{t['additive']['parameters'] - t['dot']['parameters']} more parameters and "
        f"{t['additive']['minutes'] / t['dot']['minutes']:.1f}× the training time. One layer at "
        f"T={lengths[-1]}: additive {c['additive'][-1]['ms']:.0f} ms and "
        f"{c['additive'][-1]['saved_mib']:.0f} MiB kept for the backward, dot product "
        f"{c['dot (math)'][-1]['ms']:.0f} ms / {c['dot (math)'][-1]['saved_mib']:.0f} MiB "
        f"(math), {c['dot (SDPA)'][-1]['ms']:.0f} ms / "
        f"{c['dot (SDPA)'][-1]['saved_mib']:.1f} MiB (SDPA)."
    )
    plot(figures, out / "additive.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    valid_loss_panel(axes[0], figures["training"], "number words, equal size")
    c = figures["cost"]
    for ax, key, label in ((axes[1], "ms", "ms per forward + backward"),
                           (axes[2], "saved_mib", "MiB saved for the backward")):  # fmt: skip
        for kind, style in zip(KINDS, ("o-", "^-", "s-"), strict=True):
            ax.loglog(c["lengths"], [r[key] for r in c[kind]], style, label=kind)
        ax.set(xlabel="sequence length T", ylabel=label, title="one layer, B=4, D=128, H=4")
        ax.minorticks_off()
        ax.set_xticks(c["lengths"], [str(n) for n in c["lengths"]])
        ax.legend()
    save_figure(fig, path)


main = cli("additive", __doc__, run)

if __name__ == "__main__":
    main()
