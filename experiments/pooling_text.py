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
2. Where does the word occur? q t₁ … t₁₆: sixteen distinct tokens after a query that equals
   one of them; name the position of the match (16 classes), read at the query's own
   position (BERT's [CLS] pooler on position 0, both mixers). A count cannot solve it: the
   answer is an order, and the query must be matched to a token up to 16 positions away.
   Attention needs one hop (the query's key-match reads the match's position); pooling
   reaches one position per layer. A 2-layer encoder of d_model 128 with 4 heads, 1,000
   steps (at d_model 256, with 1 or 4 heads, attention stayed at chance for 600–1,000 steps
   in trials: at this learning rate the wider model does not leave its plateau); accuracy
   by the distance between the query and its match.
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

WORDS, LENGTH = 64, 16  # lookup: 16 distinct word ids of 2 … 65 after the query

MIXERS = ("attention", "pooling")


def pool_encoder(model: nn.Module) -> None:
    """The encoder's token mixer becomes 1-D average pooling (window 3) minus identity."""
    for block in model.encoder.layers:
        block.self_attn = PoolingMixer(3, dims=1)


def lookup_batch(generator: torch.Generator, size: int) -> tuple[Tensor, Tensor]:
    """q t₁ … t_L with distinct t and q one of them; the label is its index i (q = t_{i+1}),
    so the match lies label + 1 positions after the query.

    Shape: -> ids (size, LENGTH + 1), labels (size,) in [0, LENGTH).
    """
    words = torch.rand(size, WORDS, generator=generator).argsort(-1)[:, :LENGTH] + 2  # (B, L)
    which = torch.randint(0, LENGTH, (size,), generator=generator)  # (B,)
    query = words[torch.arange(size), which, None]  # (B, 1)
    return torch.cat([query, words], dim=1), which


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    repeat_steps, lookup_steps, steps = (6, 6, 6) if smoke else (600, 1000, 300)
    figures: dict[str, Any] = {"repeat": {}, "lookup": {}, "numbers": {}, "steps": steps}
    for mixer in MIXERS:
        alter = pool_encoder if mixer == "pooling" else None
        figures["repeat"][mixer] = train_repeat_finder(True, 256, repeat_steps, seed,
                                                       alter=alter)  # fmt: skip
        figures["lookup"][mixer] = train_repeat_finder(
            True, 128, lookup_steps, seed, length=LENGTH, vocab=WORDS + 2, alter=alter,
            batches=lookup_batch, num_labels=LENGTH, pooling="cls", n_heads=4,
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
    r, a, n = figures["repeat"], figures["lookup"], figures["numbers"]
    near = {m: a[m]["accuracy_by_label"][:2] for m in MIXERS}  # the match 1 or 2 positions away
    far = {m: a[m]["accuracy_by_label"][2:] for m in MIXERS}  # 3 or more positions away
    figures["answer"] = (
        f"Find the repeated token ({repeat_steps} steps): attention "
        f"{r['attention']['final_accuracy']:.1%}, pooling {r['pooling']['final_accuracy']:.1%} "
        f"held-out accuracy (chance {1 / 64:.1%}). Where the query occurs ({lookup_steps} "
        f"steps): attention {a['attention']['final_accuracy']:.1%}, pooling "
        f"{a['pooling']['final_accuracy']:.1%} (chance {1 / LENGTH:.1%}); with the match 3 or "
        f"more positions away, attention {_mean(far['attention']):.1%}, pooling "
        f"{_mean(far['pooling']):.1%}; 1–2 away, pooling {_mean(near['pooling']):.1%}. Number "
        f"words ({steps} steps): attention encoder {last_valid(n['attention'])}, pooling "
        f"encoder {last_valid(n['pooling'])} (validation loss, greedy exact match), with "
        f"{n['attention']['parameters'] - n['pooling']['parameters']:,} fewer parameters."
    )
    plot(figures, out / "pooling_text.png")
    return figures


def _mean(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return sum(kept) / max(len(kept), 1)


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(21, 4))
    titles = {"repeat": "find the repeated token (24 tokens)",
              "lookup": f"where does the query occur? ({LENGTH} tokens)"}  # fmt: skip
    styles = dict(zip(MIXERS, ("o-", "s--"), strict=True))
    for ax, (task, title) in zip(axes, titles.items(), strict=False):
        for mixer in MIXERS:
            curve = figures[task][mixer]["curve"]
            ax.plot([c["step"] for c in curve], [c["accuracy"] for c in curve], styles[mixer],
                    label=mixer)  # fmt: skip
        ax.set(xlabel="step", ylabel="held-out accuracy", title=title, ylim=(0, 1.02))
        ax.legend()
    for mixer in MIXERS:
        by_label = figures["lookup"][mixer]["accuracy_by_label"]
        shown = [float("nan") if x is None else x for x in by_label]  # a label never drawn
        axes[2].plot(range(1, len(shown) + 1), shown, styles[mixer], label=mixer)
    axes[2].set(xlabel="positions from the query to its match", ylabel="held-out accuracy",
                title="where does the query occur? by distance", ylim=(0, 1.02))  # fmt: skip
    axes[2].legend()
    runs = {f"{mixer} encoder": run for mixer, run in figures["numbers"].items()}
    valid_loss_panel(axes[3], runs, "number words (decoder keeps attention)")
    save_figure(fig, path)


main = cli("pooling_text", __doc__, run)

if __name__ == "__main__":
    main()
