"""Why LayerNorm and not BatchNorm? What does BatchNorm do? (QUESTIONS.md 16)

    python -m experiments.norms --out runs/why          # ~10 minutes on 2 CPU cores

The same encoder-decoder (2+2 layers, d_model 128, post-LN as the paper) trained on the
number-words task — sentences of 1 to ~8 tokens, padded in token-bounded batches — with
each of the norms of `LayerConfig.norm`: LayerNorm (per token), RMSNorm (per token, no
centring) and BatchNorm (per feature, over the real tokens of the batch; running averages at
evaluation). Measured:

1. validation loss and exact match along training, at one budget;
2. what BatchNorm's statistics do: in training mode, how much a sentence's output changes
   when its batch-mates change (LayerNorm and RMSNorm: not at all), and the gap between the
   loss of the same training batches in training mode (batch statistics) and evaluation mode
   (running averages) — the train/eval mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.serialization import load_pretrained
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import fresh_data, last_valid, small_model, train_numbers

NORMS = ["layer", "rms", "batch"]


def _dropout_off(model: EncoderDecoder) -> None:
    """Training mode without dropout: only the norms' own behaviour differs by mode."""
    for m in model.modules():
        if hasattr(m, "p") and isinstance(m.p, float):
            m.p = 0.0


def batch_dependence(model: EncoderDecoder, seed: int) -> float:
    """Mean |Δ logit| of sentence 0 (training mode, no dropout) between two batches that
    differ only in its batch-mates: 0 for a per-token norm."""
    _dropout_off(model)
    model.train()
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 400, (9, 8), generator=g)  # sentence 0 + two sets of 4 mates
    tgt = torch.randint(4, 400, (9, 6), generator=g)
    with torch.no_grad():
        a = model(src[:5], tgt[:5])[0]  # (T, V)
        b = model(torch.cat([src[:1], src[5:]]), torch.cat([tgt[:1], tgt[5:]]))[0]
    return float((a - b).abs().mean())


def train_eval_gap(model: EncoderDecoder, seed: int) -> dict[str, float]:
    """Cross-entropy of random batches in training mode (batch statistics) and evaluation
    mode (running averages), dropout off."""
    _dropout_off(model)
    g = torch.Generator().manual_seed(seed + 1)
    losses = {"train_mode": 0.0, "eval_mode": 0.0}
    for _ in range(4):
        src = torch.randint(4, 400, (32, 8), generator=g)
        tgt = torch.randint(4, 400, (32, 7), generator=g)
        for mode in losses:
            model.train(mode == "train_mode")
            with torch.no_grad():
                logits = model(src, tgt[:, :-1])
            losses[mode] += float(F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten())) / 4
    return losses


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    runs = out / "norms_runs"
    data = fresh_data(runs, smoke, seed)
    steps = 6 if smoke else 800
    figures: dict[str, Any] = {"steps": steps, "training": [], "batch_dependence": {},
                               "train_eval_gap": {}}  # fmt: skip
    for norm in NORMS:
        result = train_numbers(data, runs / norm, small_model(2, norm=norm), steps, seed)
        figures["training"].append({"norm": norm, **result})
        model = load_pretrained(runs / norm)  # the run's best (lowest validation loss) weights
        figures["batch_dependence"][norm] = batch_dependence(model, seed)
        figures["train_eval_gap"][norm] = train_eval_gap(model, seed)
    end = {r["norm"]: r for r in figures["training"]}
    dep, gap = figures["batch_dependence"], figures["train_eval_gap"]["batch"]
    figures["answer"] = (
        f"After {steps} steps, validation loss (exact match): LayerNorm "
        f"{last_valid(end['layer'])}, RMSNorm {last_valid(end['rms'])}, BatchNorm "
        f"{last_valid(end['batch'])}. In training mode a sentence's logits move by "
        f"{dep['batch']:.3f} on average when its batch-mates change under BatchNorm, "
        f"{dep['layer']:.0e} under LayerNorm; BatchNorm's loss on the same batches is "
        f"{gap['train_mode']:.2f} with batch statistics and {gap['eval_mode']:.2f} with its "
        f"running averages."
    )
    plot(figures, out / "norms.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = {"layer": "LayerNorm", "rms": "RMSNorm", "batch": "BatchNorm (real tokens)"}
    for r in figures["training"]:
        steps = [v["step"] for v in r["valid"]]
        axes[0].plot(steps, [v["loss"] for v in r["valid"]], "o-", label=names[r["norm"]])
        if r["valid"] and r["valid"][0].get("exact_match") is not None:
            axes[1].plot(steps, [v["exact_match"] for v in r["valid"]], "o-",
                         label=names[r["norm"]])  # fmt: skip
    axes[0].set(xlabel="step", ylabel="validation loss (nats/token)", yscale="log",
                title="number words, post-LN 2+2 layers")  # fmt: skip
    axes[1].set(xlabel="step", ylabel="validation exact match (greedy)", ylim=(0, 1.02),
                title="whole translations right")  # fmt: skip
    for ax in axes:
        ax.legend(fontsize=8)
    save_figure(fig, path)


main = cli("norms", __doc__, run)

if __name__ == "__main__":
    main()
