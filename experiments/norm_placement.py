"""Post-LN or pre-LN, with or without warm-up: why the paper needs its warm-up
(QUESTIONS.md 21; Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture")

    python -m experiments.norm_placement --out runs/why     # ~10 minutes on 2 CPU cores

1. At initialisation, the gradient of the loss with respect to each layer's feed-forward
   output matrix W_2, for a 6+6-layer encoder-decoder, post-LN (the paper's
   x ← LN(x + F(x))) and pre-LN (x ← x + F(LN(x))): post-LN's gradients are largest at the
   top layers — a large learning rate from step 1 moves them too far — while pre-LN's stay
   level across depth.
2. The same model trained on the number-words task (`aiayn demo`'s data: English number
   words to German, unseen test numbers) for a fixed number of steps at peak lr 2e-3, each
   placement with a linear warm-up over 1/3 of the steps and without one (warm-up of 1
   step), cosine decay in both: validation loss curves and exact match at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiayn.config import ModelConfig
from aiayn.models.encoder_decoder import EncoderDecoder
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import (
    ffn_gradients,
    fresh_data,
    last_valid,
    small_model,
    train_numbers,
)

LAYERS = 6


def model_config(norm_first: bool, layers: int = LAYERS) -> ModelConfig:
    return small_model(layers, norm_first=norm_first)


def gradients_at_init(norm_first: bool, seed: int, layers: int = LAYERS) -> dict[str, list]:
    """‖∂L/∂W_2‖ of each encoder and decoder layer's feed-forward, at initialisation, for a
    cross-entropy on random targets (the loss a first step sees), averaged over 5 batches."""
    seed_everything(seed)
    return ffn_gradients(EncoderDecoder(model_config(norm_first, layers)), seed)


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    layers = 2 if smoke else LAYERS
    steps = 6 if smoke else 600
    figures: dict[str, Any] = {
        "gradients_at_init": {
            "post-LN": gradients_at_init(False, seed, layers),
            "pre-LN": gradients_at_init(True, seed, layers),
        }
    }
    runs = out / "norm_placement_runs"
    data = fresh_data(runs, smoke, seed)
    figures["training"] = [
        {"norm": "pre-LN" if pre else "post-LN", "warmup_steps": warmup,
         **train_numbers(data, runs / f"{'pre' if pre else 'post'}_w{warmup}",
                         model_config(pre, layers), steps, seed, warmup_steps=warmup)}
        for pre in (False, True)
        for warmup in (1, steps // 3)
    ]  # fmt: skip
    g = figures["gradients_at_init"]
    end = {(r["norm"], r["warmup_steps"] > 1): r for r in figures["training"]}
    figures["answer"] = (
        f"At initialisation, the top decoder layer's ‖∂L/∂W_2‖ is "
        f"{g['post-LN']['decoder'][-1] / g['post-LN']['decoder'][0]:.1f}× the bottom one's in "
        f"post-LN and {g['pre-LN']['decoder'][-1] / g['pre-LN']['decoder'][0]:.1f}× in pre-LN. "
        f"After {steps} steps at peak lr 2e-3, validation loss (exact match): post-LN "
        f"{last_valid(end['post-LN', True])} with warm-up, "
        f"{last_valid(end['post-LN', False])} without; pre-LN "
        f"{last_valid(end['pre-LN', True])} with, {last_valid(end['pre-LN', False])} without."
    )
    plot(figures, out / "norm_placement.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for norm, style in (("post-LN", "o-"), ("pre-LN", "s-")):
        for stack, alpha in (("encoder", 0.5), ("decoder", 1.0)):
            values = figures["gradients_at_init"][norm][stack]
            ax.plot(range(1, len(values) + 1), values, style, alpha=alpha, label=f"{norm} {stack}")
    ax.set(xlabel="layer", ylabel="‖∂L/∂W_2‖ at initialisation",
           title="gradient by depth (Xiong et al. 2020)")  # fmt: skip
    ax.legend(fontsize=8)
    ax = axes[1]
    for r in figures["training"]:
        label = f"{r['norm']}, warm-up {r['warmup_steps']}"
        ax.plot([v["step"] for v in r["valid"]], [v["loss"] for v in r["valid"]], "o-",
                label=label)  # fmt: skip
    ax.set(xlabel="step", ylabel="validation loss (nats/token)", yscale="log",
           title="training at peak lr 2e-3")  # fmt: skip
    ax.legend(fontsize=8)
    save_figure(fig, path)


main = cli("norm_placement", __doc__, run)

if __name__ == "__main__":
    main()
