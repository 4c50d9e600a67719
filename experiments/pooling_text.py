"""Can pooling replace attention on text? (QUESTIONS.md 34, the text half; images: docs/vision.md)

    python -m experiments.pooling_text --out docs/why     # 24 minutes on 1 of 2 shared CPU cores

PoolFormer's token mixer on a sequence (`aiayn.nn.pooling_mixer.PoolingMixer(3, dims=1)`):
each token becomes the mean of the real tokens among its 3 neighbours minus itself, padding
left out — no parameters, and a reach of one position per layer. Two text tasks, the same
model and budget with attention or pooling as the encoder's token mixer:

1. Name the token that occurs twice in a sequence of 24 distinct tokens (the task of
   experiments.sqrt_dk): a 2-layer encoder-only model (d_model 256, 1 head, mean of the final
   vectors into a classifier), 600 steps. It looks like long-range matching, but a count
   solves it: the mean of per-token features is a bag of words, where the answer is the one
   token counted twice.
2. Associative recall, which a count cannot solve: [CLS] k₁ v₁ … k₈ v₈ q — eight key-value
   pairs, then a query repeating one key; name its value (32 classes). The answer needs the
   query matched to a key up to 16 positions back *and* the order (which value follows it).
   The same model and budget.
3. The number-words translation task (English number words to German, unseen test numbers),
   the 2+2-layer encoder-decoder, 300 steps: only the encoder's self-attention is replaced;
   the decoder keeps its self- and cross-attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

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

KEYS, PAIRS = 32, 8  # associative recall: key ids 2 … 33, value ids 34 … 65

MIXERS = ("attention", "pooling")


def pool_encoder(model: nn.Module) -> None:
    """The encoder's token mixer becomes 1-D average pooling (window 3) minus identity."""
    for block in model.encoder.layers:
        block.self_attn = PoolingMixer(3, dims=1)


def recall_batch(generator: torch.Generator, size: int) -> tuple[Tensor, Tensor]:
    """[CLS] k₁ v₁ … k_P v_P q with distinct keys and q one of them; the label is q's value.

    Shape: -> ids (size, 2·PAIRS + 2), labels (size,) in [0, KEYS).
    """
    keys = torch.rand(size, KEYS, generator=generator).argsort(-1)[:, :PAIRS] + 2  # (B, P)
    values = torch.randint(0, KEYS, (size, PAIRS), generator=generator)  # (B, P) classes
    which = torch.randint(0, PAIRS, (size,), generator=generator)  # (B,)
    rows = torch.arange(size)
    pairs = torch.stack([keys, values + 2 + KEYS], dim=2).reshape(size, 2 * PAIRS)  # (B, 2P)
    cls = torch.ones(size, 1, dtype=torch.long)
    return torch.cat([cls, pairs, keys[rows, which, None]], dim=1), values[rows, which]


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    repeat_steps, steps = (6, 6) if smoke else (600, 300)
    figures: dict[str, Any] = {"repeat": {}, "numbers": {}, "steps": steps}
    figures["recall"] = {}
    for mixer in MIXERS:
        alter = pool_encoder if mixer == "pooling" else None
        figures["repeat"][mixer] = train_repeat_finder(True, 256, repeat_steps, seed,
                                                       alter=alter)  # fmt: skip
        figures["recall"][mixer] = train_repeat_finder(
            True, 256, repeat_steps, seed, length=2 * PAIRS + 1, alter=alter,
            batches=recall_batch, num_labels=KEYS,
        )  # fmt: skip
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
    r, a, n = figures["repeat"], figures["recall"], figures["numbers"]
    figures["answer"] = (
        f"Find the repeated token ({repeat_steps} steps): attention "
        f"{r['attention']['final_accuracy']:.1%}, pooling {r['pooling']['final_accuracy']:.1%} "
        f"held-out accuracy (chance {1 / 64:.1%}). Associative recall: attention "
        f"{a['attention']['final_accuracy']:.1%}, pooling {a['pooling']['final_accuracy']:.1%} "
        f"(chance {1 / KEYS:.1%}). Number "
        f"words ({steps} steps): attention encoder {last_valid(n['attention'])}, pooling "
        f"encoder {last_valid(n['pooling'])} (validation loss, greedy exact match), with "
        f"{n['attention']['parameters'] - n['pooling']['parameters']:,} fewer parameters."
    )
    plot(figures, out / "pooling_text.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    titles = {"repeat": "find the repeated token (24 tokens)",
              "recall": f"associative recall ({PAIRS} key-value pairs)"}  # fmt: skip
    for ax, (task, title) in zip(axes, titles.items(), strict=False):
        for mixer, style in zip(MIXERS, ("o-", "s--"), strict=True):
            curve = figures[task][mixer]["curve"]
            ax.plot([c["step"] for c in curve], [c["accuracy"] for c in curve], style,
                    label=mixer)  # fmt: skip
        ax.set(xlabel="step", ylabel="held-out accuracy", title=title, ylim=(0, 1.02))
        ax.legend()
    runs = {f"{mixer} encoder": run for mixer, run in figures["numbers"].items()}
    valid_loss_panel(axes[2], runs, "number words (decoder keeps attention)")
    save_figure(fig, path)


main = cli("pooling_text", __doc__, run)

if __name__ == "__main__":
    main()
