"""What are the residual connections for? (QUESTIONS.md 15)

    python -m experiments.residuals --out docs/why     # 10.5 minutes on 1 of 2 shared CPU cores

1. At initialisation, ‖∂L/∂W_2‖ of every layer's feed-forward in a 12+12-layer encoder-decoder
   (d_model 128), post-LN (the paper) and pre-LN, with the residual x + Sublayer(x) and
   without it (x ← Sublayer(x), the norm kept where it was): how much of the loss's gradient
   reaches each depth.
2. The 2+2-layer post-LN model of the other number-words experiments, trained for the same
   steps with and without residuals: validation loss and greedy exact match. (At 4+4 layers
   neither learned a single number in 300 steps — post-LN that deep starts slowly at this
   learning rate, see experiments.norm_placement — so the budget could not tell them apart.)

"Without" is `NoResidual`, a `Residual` whose `after` drops the `x +` (same norm, same dropout),
swapped into every sub-layer of every block of the built model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.nn.residual import Residual
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import (
    ffn_gradients,
    fresh_data,
    greedy_exact_match,
    last_valid,
    read_split,
    small_model,
    trained_model,
    valid_loss_panel,
)


class NoResidual(Residual):
    """Residual without the identity path: post-LN x ← LN(Dropout(y)), pre-LN x ← Dropout(y)."""

    def after(self, x: Tensor, y: Tensor, real: Tensor | None = None) -> Tensor:
        """Shape: x, y (B, T, D), real (B, T) bool | None -> (B, T, D); x is not used."""
        y = self.dropout(y)
        return y if self.norm_first else self.norm(y, real)


def remove_residuals(model: EncoderDecoder) -> None:
    """Every sub-layer of every block: its `Residual` → a `NoResidual` of the same settings."""
    cfg = model.config.layer
    for stack in (model.encoder, model.decoder):
        for block in stack.layers:
            for name in ("res_self", "res_cross", "res_ffn"):
                if getattr(block, name) is not None:
                    setattr(block, name, NoResidual(cfg.d_model, cfg.dropout, cfg.norm_first,
                                                    cfg.layer_norm_eps, cfg.norm))  # fmt: skip


def at_init(norm_first: bool, residual: bool, layers: int, seed: int) -> dict[str, Any]:
    """The feed-forward gradients by depth, and how alike the encoder's output vectors of one
    sentence are (mean cosine between distinct positions, 0 for unrelated vectors)."""
    seed_everything(seed)
    model = EncoderDecoder(small_model(layers, norm_first=norm_first))
    if not residual:
        remove_residuals(model)
    figures: dict[str, Any] = ffn_gradients(model, seed)
    model.eval()
    src = torch.randint(4, 400, (32, 20), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        memory = F.normalize(model.encode(src)[0], dim=-1)  # (B, S, D)
    cos = memory @ memory.transpose(1, 2)  # (B, S, S)
    off = ~torch.eye(src.shape[1], dtype=torch.bool)  # (S, S) distinct positions
    figures["output_cosine"] = float(cos[:, off].mean())
    return figures


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    deep, layers, steps = (3, 2, 6) if smoke else (12, 2, 300)
    figures: dict[str, Any] = {"gradients_at_init": {}, "training": {}, "steps": steps}
    for norm_first in (False, True):
        for residual in (True, False):
            key = f"{'pre' if norm_first else 'post'}-LN, {'with' if residual else 'without'}"
            figures["gradients_at_init"][key] = at_init(norm_first, residual, deep, seed)
    runs = out / "residuals_runs"
    data = fresh_data(runs, smoke, seed)
    src, ref = read_split(data, "valid")
    for residual in (True, False):
        key = "with" if residual else "without"
        model, tokenizers, curve = trained_model(
            data, runs / key, small_model(layers), steps, seed,
            alter=None if residual else remove_residuals,
        )  # fmt: skip
        figures["training"][key] = {
            **curve, "exact_match": greedy_exact_match(model, tokenizers, src, ref)
        }  # fmt: skip
    g, t = figures["gradients_at_init"], figures["training"]

    def span(key: str, stack: str) -> str:
        values = g[key][stack]
        return f"{values[0]:.2g} → {values[-1]:.2g}"

    figures["answer"] = (
        f"‖∂L/∂W_2‖ at initialisation, bottom → top layer of the {deep}-layer decoder: post-LN "
        f"with residuals {span('post-LN, with', 'decoder')}, without "
        f"{span('post-LN, without', 'decoder')}; pre-LN with {span('pre-LN, with', 'decoder')}, "
        f"without {span('pre-LN, without', 'decoder')} (encoder, post-LN: "
        f"{span('post-LN, with', 'encoder')} with, {span('post-LN, without', 'encoder')} "
        f"without). Mean cosine between the encoder's output vectors of one sentence at "
        f"initialisation: post-LN {g['post-LN, with']['output_cosine']:.2f} with residuals, "
        f"{g['post-LN, without']['output_cosine']:.2f} without; pre-LN "
        f"{g['pre-LN, with']['output_cosine']:.2f} with, "
        f"{g['pre-LN, without']['output_cosine']:.2f} without. Trained {layers}+{layers} "
        f"layers for {steps} steps: with residuals {last_valid(t['with'])}, without "
        f"{last_valid(t['without'])} (validation loss, greedy exact match)."
    )
    plot(figures, out / "residuals.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, stack in zip(axes[:2], ("encoder", "decoder"), strict=True):
        for key, values in figures["gradients_at_init"].items():
            style = ("o" if key.startswith("post") else "s") + (
                "-" if key.endswith("with") else "--"
            )
            label = f"{key} (output cos {values['output_cosine']:.2f})"
            ax.semilogy(range(1, len(values[stack]) + 1), values[stack], style, label=label)
        ax.set(xlabel="layer (1 = bottom)", ylabel="‖∂L/∂W_2‖ at initialisation",
               title=f"{stack}: gradient by depth")  # fmt: skip
        ax.legend(fontsize=8)
    runs = {f"{key} residuals": run for key, run in figures["training"].items()}
    valid_loss_panel(axes[2], runs, "number words, post-LN")
    save_figure(fig, path)


main = cli("residuals", __doc__, run)

if __name__ == "__main__":
    main()
