"""Why divide by √d_k before the softmax? (QUESTIONS.md 4)

    python -m experiments.sqrt_dk --out runs/why          # ~2 minutes on 2 CPU cores

Three measurements:
1. the variance of q·k for q, k with unit-variance entries grows as d_k (16 … 1024), and is 1
   after dividing by √d_k;
2. what that does to a softmax over 32 keys: without the scaling its entropy collapses (one key
   takes all the weight) and the gradient that flows back through it vanishes;
3. a small encoder (one head, so d_k = d_model) trained to name the token that occurs twice in
   a sequence — a task only attention can solve — with and without the scaling.

Without scaling is computed exactly: the query projection's output is multiplied by √d_k,
which the attention's own 1/√d_k cancels, so the scores are the raw q·k — in the forward and
in every gradient.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.models import presets
from aiayn.models.encoder_only import EncoderOnly
from experiments.common import cli, pyplot, save_figure, seed_everything

#: A task: (generator, batch size) -> ids (B, T) with a leading [CLS], labels (B,).
Batches = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]

DIMS = [16, 32, 64, 128, 256, 512, 1024]
KEYS = 32  # keys each query attends over in measurement 2


def score_variance(generator: torch.Generator, samples: int) -> dict[str, list[float]]:
    """Var(q·k) and Var(q·k/√d_k) for q, k ~ N(0, I_{d_k})."""
    raw, scaled = [], []
    for d in DIMS:
        q = torch.randn(samples, d, generator=generator)
        k = torch.randn(samples, d, generator=generator)
        dots = (q * k).sum(-1)  # (samples,)
        raw.append(float(dots.var()))
        scaled.append(float((dots / math.sqrt(d)).var()))
    return {"d_k": DIMS, "var_qk": raw, "var_qk_scaled": scaled}


def softmax_health(generator: torch.Generator, samples: int) -> dict[str, list[float]]:
    """Normalised entropy and largest weight of a softmax over KEYS keys, and the size of the
    gradient a random read-out of the weights sends back into the softmax's input (the
    softmax Jacobian at work: a saturated softmax passes almost nothing back) — with the
    scores q·k raw and divided by √d_k."""
    out: dict[str, list[float]] = {"d_k": DIMS}
    for scaled in (False, True):
        tag = "scaled" if scaled else "raw"
        entropy, top, grad = [], [], []
        for d in DIMS:
            q = torch.randn(samples, 1, d, generator=generator)
            keys = torch.randn(samples, KEYS, d, generator=generator)
            scores = (q * keys).sum(-1)  # (samples, KEYS)
            if scaled:
                scores = scores / math.sqrt(d)
            scores.requires_grad_(True)
            weights = scores.softmax(-1)  # (samples, KEYS)
            upstream = torch.randn(samples, KEYS, generator=generator)
            (weights * upstream).sum().backward()
            weights = weights.detach()
            h = -(weights * weights.clamp_min(1e-30).log()).sum(-1) / math.log(KEYS)
            entropy.append(float(h.mean()))
            top.append(float(weights.max(-1).values.mean()))
            grad.append(float(scores.grad.norm(dim=-1).mean()))
        out[f"entropy_{tag}"], out[f"max_weight_{tag}"] = entropy, top
        out[f"grad_scores_{tag}"] = grad
    return out


class _Times(nn.Module):
    """Multiply by a constant (used to undo the 1/√d_k: scores become the raw q·k)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


def repeated_token_batch(
    generator: torch.Generator, batch: int, length: int, vocab: int
) -> tuple[Tensor, Tensor]:
    """Sequences of distinct tokens in which one token occurs twice; the label is that token.

    Shape: -> ids (batch, length + 1) with a leading [CLS] (id 1), labels (batch,).
    Token ids 2 … vocab-1; the class of token t is t - 2.
    """
    order = torch.rand(batch, vocab - 2, generator=generator).argsort(-1) + 2
    ids = order[:, :length].clone()  # (batch, length) distinct tokens
    src = torch.randint(0, length - 1, (batch,), generator=generator)
    dst = (src + 1 + torch.randint(0, length - 1, (batch,), generator=generator)) % length
    dst = torch.where(dst == src, (dst + 1) % length, dst)
    rows = torch.arange(batch)
    ids[rows, dst] = ids[rows, src]
    cls = torch.ones(batch, 1, dtype=torch.long)
    return torch.cat([cls, ids], dim=1), ids[rows, src] - 2


def train_repeat_finder(
    scaled: bool,
    d_model: int,
    steps: int,
    seed: int,
    length: int = 24,
    vocab: int = 66,
    alter: Callable[[EncoderOnly], None] | None = None,
    batches: Batches | None = None,
    num_labels: int | None = None,
    pooling: str = "mean",
    n_heads: int = 1,
) -> dict[str, Any]:
    """Train a 2-layer encoder (`n_heads` heads) to name the repeated token; accuracy on fresh
    batches.

    For experiments.pooling_text: `alter` changes the built model in place first (pooling),
    `batches` (generator, size) -> ids (size, length + 1), labels (size,) sets another task
    of `num_labels` classes over the same vocabulary, and `pooling` "cls" reads the answer
    from position 0 instead of the mean of every position. The result's
    "accuracy_by_label" is the final held-out accuracy for each label."""
    if batches is None:
        batches = partial(repeated_token_batch, length=length, vocab=vocab)
    seed_everything(seed)
    cfg = presets.bert_tiny(vocab_size=vocab, n_layers=2, d_model=d_model, n_heads=n_heads,
                            d_ff=2 * d_model, max_len=length + 1,
                            num_labels=num_labels or vocab - 2, pooling=pooling,
                            type_vocab_size=0)  # fmt: skip
    cfg = cfg.replace(layer=dataclasses.replace(cfg.layer, dropout=0.0, attention_dropout=0.0))
    model = EncoderOnly(cfg)
    if not scaled:
        for block in model.encoder.layers:
            attn = block.self_attn
            attn.w_q = nn.Sequential(attn.w_q, _Times(math.sqrt(attn.head_dim)))
    if alter is not None:
        alter(model)
    data = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    curve = []
    for step in range(1, steps + 1):
        ids, labels = batches(data, 64)
        loss = F.cross_entropy(model.classify(ids), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % max(steps // 20, 1) == 0 or step == steps:
            curve.append({"step": step, "loss": loss.item(), **_probe(model, seed, batches)})
    last = curve[-1]
    return {"scaled": scaled, "d_k": d_model, "curve": curve, "final_accuracy": last["accuracy"],
            "final_entropy": last["attention_entropy"],
            "accuracy_by_label": _accuracy_by_label(model, seed, batches)}  # fmt: skip


@torch.no_grad()
def _accuracy_by_label(model: EncoderOnly, seed: int, batches: Batches) -> list[float | None]:
    """Held-out accuracy on 2,048 sequences, label by label (None: a label never drawn)."""
    model.eval()
    ids, labels = batches(torch.Generator().manual_seed(seed + 98), 2048)
    right = (model.classify(ids).argmax(-1) == labels).float()  # (2048,)
    model.train()
    n = model.config.num_labels
    hits = torch.zeros(n).index_add_(0, labels, right)
    seen = torch.bincount(labels, minlength=n).float()
    return [float(h / c) if c else None for h, c in zip(hits, seen, strict=True)]


@torch.no_grad()
def _probe(model: EncoderOnly, seed: int, batches: Batches) -> dict[str, float | None]:
    """Accuracy on 512 held-out sequences, and the first layer's mean attention entropy."""
    model.eval()
    ids, labels = batches(torch.Generator().manual_seed(seed + 99), 512)
    accuracy = float((model.classify(ids).argmax(-1) == labels).float().mean())
    _, _, weights = model.encode(ids, need_weights=True)  # [(B, H, T, T)] per layer
    entropy = None  # a model without attention (a pooling mixer) has no weights
    if weights:
        w = weights[0]
        entropy = float((-(w * w.clamp_min(1e-30).log()).sum(-1) / math.log(w.shape[-1])).mean())
    model.train()
    return {"accuracy": accuracy, "attention_entropy": entropy}


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    generator = seed_everything(seed)
    samples = 200 if smoke else 20000
    figures: dict[str, Any] = {
        "variance": score_variance(generator, samples),
        "softmax": softmax_health(generator, 64 if smoke else 2000),
    }
    steps, d_model = (6, 32) if smoke else (600, 256)
    figures["training"] = [train_repeat_finder(s, d_model, steps, seed) for s in (True, False)]
    plot(figures, out / "sqrt_dk.png")
    v, s = figures["variance"], figures["softmax"]
    t = {("scaled" if r["scaled"] else "raw"): r for r in figures["training"]}
    figures["answer"] = (
        f"Var(q·k) grows as d_k ({v['var_qk'][0]:.0f} at d_k=16, {v['var_qk'][-1]:.0f} at "
        f"1024) and stays near 1 scaled ({min(v['var_qk_scaled']):.2f}–"
        f"{max(v['var_qk_scaled']):.2f}). Unscaled, a softmax over {KEYS} keys at d_k=1024 "
        f"puts {s['max_weight_raw'][-1]:.2f} on its top key (scaled: "
        f"{s['max_weight_scaled'][-1]:.2f}) and passes back a gradient "
        f"{s['grad_scores_scaled'][-1] / max(s['grad_scores_raw'][-1], 1e-12):.0f}× smaller "
        f"into its scores. Trained for {steps} steps at d_k={d_model}: accuracy "
        f"{t['scaled']['final_accuracy']:.3f} scaled vs {t['raw']['final_accuracy']:.3f} raw."
    )
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    v, s = figures["variance"], figures["softmax"]
    ax = axes[0]
    ax.loglog(v["d_k"], v["var_qk"], "o-", label="Var(q·k)")
    ax.loglog(v["d_k"], v["var_qk_scaled"], "s-", label="Var(q·k / √d_k)")
    ax.loglog(v["d_k"], v["d_k"], "k:", label="d_k")
    ax.set(xlabel="d_k", title="score variance", ylabel="variance")
    ax.legend()
    ax = axes[1]
    for tag, style in (("raw", "o-"), ("scaled", "s-")):
        ax.semilogx(s["d_k"], s[f"entropy_{tag}"], style, label=f"entropy, {tag}")
        ax.semilogx(s["d_k"], s[f"max_weight_{tag}"], style, alpha=0.5, label=f"top weight, {tag}")
        ax.semilogx(
            s["d_k"], s[f"grad_scores_{tag}"], style, alpha=0.3, label=f"|∂/∂scores|, {tag}"
        )
    ax.set(xlabel="d_k", title=f"softmax over {KEYS} keys", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    ax = axes[2]
    for run_ in figures["training"]:
        tag = "÷√d_k" if run_["scaled"] else "raw q·k"
        curve = run_["curve"]
        ax.plot([c["step"] for c in curve], [c["accuracy"] for c in curve], label=tag)
    ax.set(xlabel="step", ylabel="held-out accuracy",
           title=f"find the repeated token, d_k={figures['training'][0]['d_k']}")  # fmt: skip
    ax.legend()
    save_figure(fig, path)


main = cli("sqrt_dk", __doc__, run)

if __name__ == "__main__":
    main()
