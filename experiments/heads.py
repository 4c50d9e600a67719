"""Do heads cover different subspaces? What do attention maps not show? (QUESTIONS.md 9, 35)

    python -m experiments.heads --out docs/why     # 4.6 minutes on 1 of 2 shared CPU cores

On an encoder-decoder (2+2 layers, d_model 128, 4 heads) trained on the number-words task:

1. How different the heads' attention is: per layer of each attention (encoder self, decoder
   self, cross), the mean Jensen–Shannon divergence (bits, 0 = the same distribution, 1 =
   disjoint) between every pair of heads' attention rows, over the real tokens of 200
   validation pairs — trained, and at initialisation for reference.
2. What each head is worth: each of the 24 heads removed alone (its output zeroed before W_O,
   through a forward pre-hook on W_O — nothing in the model changed) → the drop in greedy exact
   match on the 300 validation numbers and the rise in teacher-forced loss.
3. Whether a sharp map means an important head: each head's mean attention entropy (bits)
   against its pruning cost.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.nn.attention import MultiHeadAttention
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import batch_loss, greedy_exact_match, teacher_batch, trained_baseline

KINDS = ("encoder_self", "decoder_self", "decoder_cross")


def _attention(model: EncoderDecoder, kind: str, layer: int) -> MultiHeadAttention:
    block = (model.encoder if kind == "encoder_self" else model.decoder).layers[layer]
    return block.cross_attn if kind == "decoder_cross" else block.self_attn


def head_divergence(weights: Tensor, real: Tensor) -> float:
    """Mean Jensen–Shannon divergence (bits) between every pair of heads' rows.

    Shape: weights (B, H, T, S), real (B, T) bool (the query rows that count).
    """
    H = weights.shape[1]
    rows = weights.transpose(1, 2)[real]  # (N, H, S): each real query's H distributions
    js = []
    for a, b in itertools.combinations(range(H), 2):
        p, q = rows[:, a], rows[:, b]  # (N, S)
        m = (p + q) / 2
        kl_pm = torch.xlogy(p, p).sum(-1) - torch.xlogy(p, m).sum(-1)  # (N,)
        kl_qm = torch.xlogy(q, q).sum(-1) - torch.xlogy(q, m).sum(-1)
        js.append(((kl_pm + kl_qm) / (2 * math.log(2))).mean())
    return float(torch.stack(js).mean())


def head_entropy(weights: Tensor, real: Tensor) -> list[float]:
    """Each head's mean attention entropy in bits. Shape: weights (B, H, T, S), real (B, T)."""
    rows = weights.transpose(1, 2)[real]  # (N, H, S)
    return (-torch.xlogy(rows, rows).sum(-1) / math.log(2)).mean(0).tolist()


@torch.no_grad()
def head_maps(model: EncoderDecoder, src: Tensor, tgt_in: Tensor) -> dict[str, dict[str, list]]:
    """Per kind: each layer's head divergence and its heads' entropies.
    Shape: src (B, S), tgt_in (B, T)."""
    model.eval()
    maps = model.attention_maps(src, tgt_in)
    pad = model.config.pad_id
    real = {"encoder_self": src != pad, "decoder_self": tgt_in != pad}
    real["decoder_cross"] = real["decoder_self"]
    out = {}
    for kind in KINDS:
        layers = getattr(maps, kind)
        out[kind] = {
            "divergence": [head_divergence(w, real[kind]) for w in layers],
            "entropy": [head_entropy(w, real[kind]) for w in layers],
        }
    return out


class HeadMask:
    """Zero head `head`'s slice of the merged heads before W_O while in a `with` block."""

    def __init__(self, attn: MultiHeadAttention, head: int) -> None:
        self.attn, self.cols = attn, slice(head * attn.head_dim, (head + 1) * attn.head_dim)

    def _hook(self, _: Any, args: tuple[Tensor]) -> tuple[Tensor]:
        x = args[0].clone()  # (B, T, D): Concat(head_1, …, head_h)
        x[..., self.cols] = 0.0
        return (x,)

    def __enter__(self) -> HeadMask:
        self.handle = self.attn.w_o.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *_: object) -> None:
        self.handle.remove()


def pruning(model: EncoderDecoder, tokenizers: Any, src: list[str], ref: list[str],
            batch: Any) -> dict[str, Any]:  # fmt: skip
    """Exact match and loss with each head removed alone, beside the full model's."""
    full = {"exact_match": greedy_exact_match(model, tokenizers, src, ref),
            "loss": batch_loss(model, batch)}  # fmt: skip
    heads = {}
    for kind in KINDS:
        n_layers = len((model.encoder if kind == "encoder_self" else model.decoder).layers)
        heads[kind] = []
        for layer in range(n_layers):
            attn = _attention(model, kind, layer)
            row = []
            for h in range(attn.n_heads):
                with HeadMask(attn, h):
                    row.append({"exact_match": greedy_exact_match(model, tokenizers, src, ref),
                                "loss": batch_loss(model, batch)})  # fmt: skip
            heads[kind].append(row)
    return {"full": full, "heads": heads}


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    steps = 6 if smoke else 400
    model, tokenizers, curve, src, ref = trained_baseline(out / "heads_runs", smoke, seed, steps)
    batch = teacher_batch(tokenizers, src[:200], ref[:200])
    seed_everything(seed)  # the weights training started from
    fresh = EncoderDecoder(model.config).eval()
    figures: dict[str, Any] = {
        "steps": steps,
        "valid": curve["valid"],
        "trained": head_maps(model, batch.src, batch.tgt_in),
        "at_init": head_maps(fresh, batch.src, batch.tgt_in),
        "pruning": pruning(model, tokenizers, src, ref, batch),
    }
    figures["answer"] = answer(figures)
    plot(figures, out / "heads.png")
    return figures


def _costs(figures: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(name, exact-match drop, loss rise, entropy) of every head."""
    p, t = figures["pruning"], figures["trained"]
    rows = []
    for kind in KINDS:
        for layer, heads in enumerate(p["heads"][kind]):
            for h, r in enumerate(heads):
                name = f"{kind} L{layer + 1} h{h + 1}"
                drop = p["full"]["exact_match"] - r["exact_match"]
                rise = r["loss"] - p["full"]["loss"]
                rows.append((name, drop, rise, t[kind]["entropy"][layer][h]))
    return rows


def answer(figures: dict[str, Any]) -> str:
    t, i = figures["trained"], figures["at_init"]
    div = ", ".join(
        f"{k.replace('_', ' ')} " + "/".join(f"{d:.2f}" for d in t[k]["divergence"])
        + " (init " + "/".join(f"{d:.2f}" for d in i[k]["divergence"]) + ")"
        for k in KINDS
    )  # fmt: skip
    rows = _costs(figures)
    free = [r for r in rows if r[1] <= 0.005]
    worst = max(rows, key=lambda r: r[1])
    sharpest = min(rows, key=lambda r: r[3])
    full = figures["pruning"]["full"]
    return (
        f"Mean Jensen–Shannon divergence between heads per layer (bits): {div}. The full model "
        f"has exact match {full['exact_match']:.1%}; removing one head alone costs ≤ 0.5 points "
        f"for {len(free)} of {len(rows)} heads; the most needed is {worst[0]} "
        f"(−{worst[1]:.1%}, loss +{worst[2]:.2f}). The sharpest head, {sharpest[0]} "
        f"({sharpest[3]:.2f} bits), costs −{sharpest[1]:.1%} (loss +{sharpest[2]:.3f})."
    )


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    for kind, style in zip(KINDS, ("o-", "s-", "^-"), strict=True):
        for when, alpha in (("trained", 1.0), ("at_init", 0.4)):
            d = figures[when][kind]["divergence"]
            ax.plot(range(1, len(d) + 1), d, style, alpha=alpha,
                    label=f"{kind.replace('_', ' ')}, {when.replace('_', ' ')}")  # fmt: skip
    ax.set(xlabel="layer", ylabel="mean pairwise JS divergence (bits)",
           title="how different are the heads?", ylim=(0, 1))  # fmt: skip
    ax.set_xticks([1, 2])
    ax.legend(fontsize=7)
    ax = axes[1]
    p = figures["pruning"]
    names, grid = [], []
    for kind in KINDS:
        for layer, heads in enumerate(p["heads"][kind]):
            names.append(
                f"{kind.replace('decoder_', 'dec ').replace('encoder_', 'enc ')} L{layer + 1}"
            )
            grid.append([100 * (p["full"]["exact_match"] - r["exact_match"]) for r in heads])
    image = ax.imshow(grid, cmap="Reds", aspect="auto", vmin=0)
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            dark = value > 0.5 * max(max(row) for row in grid)
            ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")  # fmt: skip
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(range(len(grid[0])), [f"head {h + 1}" for h in range(len(grid[0]))])
    ax.set_title("exact-match points lost, one head removed")
    fig.colorbar(image, ax=ax)
    ax = axes[2]
    rows = _costs(figures)
    for kind, marker in zip(KINDS, "os^", strict=True):
        pts = [r for r in rows if r[0].startswith(kind)]
        ax.scatter([r[3] for r in pts], [r[2] for r in pts], marker=marker,
                   label=kind.replace("_", " "))  # fmt: skip
    ax.set(xlabel="head's mean attention entropy (bits; low = sharp)",
           ylabel="validation loss rise when removed", title="sharp ≠ needed")  # fmt: skip
    ax.legend(fontsize=8)
    save_figure(fig, path)


main = cli("heads", __doc__, run)

if __name__ == "__main__":
    main()
