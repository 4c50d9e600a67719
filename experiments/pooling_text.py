"""Can pooling replace attention on text? (QUESTIONS.md 34, the text half; images: docs/vision.md)

    python -m experiments.pooling_text --out docs/why     # ~8 minutes on 1 of 2 CPU cores

PoolFormer's token mixer on a sequence (`aiayn.nn.pooling_mixer.PoolingMixer(3, dims=1)`):
each token becomes the mean of the real tokens among its 3 neighbours minus itself, padding
left out — no parameters, and a reach of one position per layer. Two text tasks, the same
model and budget with attention or pooling as the encoder's token mixer:

1. Name the token that occurs twice in a sequence of 24 distinct tokens (the task of
   experiments.sqrt_dk): a 2-layer encoder-only model (d_model 128, 1 head, mean of the final
   vectors into a classifier), 600 steps. The two copies are on average 8 positions apart —
   long-range matching, nothing a 2-layer reach of ±2 can see.
2. The number-words translation task (English number words to German, unseen test numbers),
   the 2+2-layer encoder-decoder, 300 steps: only the encoder's self-attention is replaced;
   the decoder keeps its self- and cross-attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from aiayn.nn.pooling_mixer import PoolingMixer
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
from experiments.sqrt_dk import train_repeat_finder

MIXERS = ("attention", "pooling")


def pool_encoder(model: nn.Module) -> None:
    """The encoder's token mixer becomes 1-D average pooling (window 3) minus identity."""
    for block in model.encoder.layers:
        block.self_attn = PoolingMixer(3, dims=1)


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    repeat_steps, steps = (6, 6) if smoke else (600, 300)
    figures: dict[str, Any] = {"repeat": {}, "numbers": {}, "steps": steps}
    for mixer in MIXERS:
        alter = pool_encoder if mixer == "pooling" else None
        figures["repeat"][mixer] = train_repeat_finder(True, 128, repeat_steps, seed,
                                                       alter=alter)  # fmt: skip
    runs = out / "pooling_text_runs"
    data = fresh_data(runs, smoke, seed)
    src, ref = read_split(data, "valid")
    for mixer in MIXERS:
        alter = pool_encoder if mixer == "pooling" else None
        model, tokenizers, curve = trained_model(data, runs / mixer, small_model(), steps, seed,
                                                 alter=alter)  # fmt: skip
        figures["numbers"][mixer] = {
            **curve,
            "parameters": model.num_parameters(),
            "exact_match": greedy_exact_match(model, tokenizers, src, ref),
        }
    r, n = figures["repeat"], figures["numbers"]
    figures["answer"] = (
        f"Find the repeated token ({repeat_steps} steps): attention "
        f"{r['attention']['final_accuracy']:.1%}, pooling {r['pooling']['final_accuracy']:.1%} "
        f"held-out accuracy (chance {1 / 64:.1%}). Number "
        f"words ({steps} steps): attention encoder {last_valid(n['attention'])}, pooling "
        f"encoder {last_valid(n['pooling'])} (validation loss, greedy exact match), with "
        f"{n['attention']['parameters'] - n['pooling']['parameters']:,} fewer parameters."
    )
    plot(figures, out / "pooling_text.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for mixer, style in zip(MIXERS, ("o-", "s--"), strict=True):
        curve = figures["repeat"][mixer]["curve"]
        ax.plot([c["step"] for c in curve], [c["accuracy"] for c in curve], style, label=mixer)
    ax.set(xlabel="step", ylabel="held-out accuracy", title="find the repeated token (24 tokens)",
           ylim=(0, 1.02))  # fmt: skip
    ax.legend()
    runs = {f"{mixer} encoder": run for mixer, run in figures["numbers"].items()}
    valid_loss_panel(axes[1], runs, "number words (decoder keeps attention)")
    save_figure(fig, path)


main = cli("pooling_text", __doc__, run)

if __name__ == "__main__":
    main()
