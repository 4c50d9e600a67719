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

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from aiayn.config import ModelConfig
from aiayn.data.number_words import make_splits, write_splits
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.train.config import TrainConfig
from aiayn.visualize.curves import read_metrics
from experiments.common import cli, pyplot, save_figure, seed_everything

LAYERS = 6


def model_config(norm_first: bool, layers: int = LAYERS, vocab: int = 400) -> ModelConfig:
    return ModelConfig.create(
        d_model=128, n_heads=4, d_ff=512, n_encoder_layers=layers, n_decoder_layers=layers,
        dropout=0.1, max_len=64, norm_first=norm_first, src_vocab_size=vocab,
        tgt_vocab_size=vocab,
    )  # fmt: skip


def gradients_at_init(norm_first: bool, seed: int, layers: int = LAYERS) -> dict[str, list]:
    """‖∂L/∂W_2‖ of each encoder and decoder layer's feed-forward, at initialisation, for a
    cross-entropy on random targets (the loss a first step sees), averaged over 5 batches."""
    seed_everything(seed)
    model = EncoderDecoder(model_config(norm_first, layers)).train()
    data = torch.Generator().manual_seed(seed)
    sums = {"encoder": [0.0] * layers, "decoder": [0.0] * layers}
    for _ in range(5):
        src = torch.randint(4, 400, (32, 20), generator=data)  # (B, S)
        tgt = torch.randint(4, 400, (32, 21), generator=data)  # (B, T+1)
        logits = model(src, tgt[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten())
        model.zero_grad(set_to_none=True)
        loss.backward()
        for stack in sums:
            for i, layer in enumerate(getattr(model, stack).layers):
                sums[stack][i] += float(layer.ffn.w_2.weight.grad.norm()) / 5
    return sums


def train_run(data: Path, out: Path, norm_first: bool, warmup: int, steps: int, seed: int,
              layers: int) -> dict[str, Any]:  # fmt: skip
    config = TrainConfig(
        schedule="cosine", peak_lr=2e-3, warmup_steps=warmup, max_steps=steps,
        valid_every=max(steps // 10, 1), log_every=max(steps // 20, 1), keep_last=1,
        best_metric="loss", clip_norm=0.0, precision="fp32", device="cpu", seed=seed,
    )  # fmt: skip
    task = TranslationConfig(vocab_size=400, max_len=64, max_tokens=3000, valid_beam=1)
    result = train_translation(
        data / "train.en", data / "train.de", data / "valid.en", data / "valid.de", out,
        model_config(norm_first, layers), config, task, progress=False,
    )  # fmt: skip
    valid = read_metrics(out / "metrics.jsonl", "valid")
    train = read_metrics(out / "metrics.jsonl", "train")
    return {
        "norm": "pre-LN" if norm_first else "post-LN",
        "warmup_steps": warmup,
        "valid": [
            {"step": r["step"], "loss": r["loss"], "exact_match": r.get("exact_match")}
            for r in valid
        ],
        "train_loss": [r["loss"] for r in train],
        "final_exact_match": valid[-1].get("exact_match") if valid else None,
        "best_valid_loss": result.best,
    }


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
    shutil.rmtree(runs, ignore_errors=True)  # this experiment's own scratch: start afresh
    data = runs / "data"
    write_splits(make_splits(300 if smoke else 20_000, 100 if smoke else 300, 8, seed=seed), data)
    figures["training"] = [
        train_run(
            data,
            runs / f"{'pre' if pre else 'post'}_w{w}",
            pre,
            w,
            steps,
            seed,
            layers,
        )
        for pre in (False, True)
        for w in (1, steps // 3)
    ]
    g = figures["gradients_at_init"]
    end = {(r["norm"], r["warmup_steps"] > 1): r for r in figures["training"]}
    figures["answer"] = (
        f"At initialisation, the top decoder layer's ‖∂L/∂W_2‖ is "
        f"{g['post-LN']['decoder'][-1] / g['post-LN']['decoder'][0]:.1f}× the bottom one's in "
        f"post-LN and {g['pre-LN']['decoder'][-1] / g['pre-LN']['decoder'][0]:.1f}× in pre-LN. "
        f"After {steps} steps at peak lr 2e-3, validation loss (exact match): post-LN "
        f"{_end(end['post-LN', True])} with warm-up, {_end(end['post-LN', False])} without; "
        f"pre-LN {_end(end['pre-LN', True])} with, {_end(end['pre-LN', False])} without."
    )
    plot(figures, out / "norm_placement.png")
    return figures


def _end(run: dict[str, Any]) -> str:
    last = run["valid"][-1] if run["valid"] else {}
    em = last.get("exact_match")
    return f"{last.get('loss', float('nan')):.2f}" + (f" ({em:.1%})" if em is not None else "")


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
