"""Which positional encodings exist, is there a better form, and what do they buy at all?
(QUESTIONS.md 12, 13)

    python -m experiments.positions --out runs/why                   # downloads Tiny Shakespeare
    python -m experiments.positions --text input.txt --out runs/why  # or a local copy

The same character-level decoder-only model (2 layers, d_model 128, 4 heads, pre-LN) trained
on Tiny Shakespeare with windows of L = 64 characters, once per positional scheme: sinusoidal
(§3.5) added to the embeddings as GPT-style models do (no scale) and as the paper does
(embeddings × √d_model, `sinusoidal_scaled`), learned, RoPE, ALiBi, T5's bucketed bias,
Shaw's clipped distances, and none (NoPE: a causal model can still infer position from how
many tokens it sees). The same steps, seed and data for each. Then validation loss (nats per
character) in windows of L, 2L and 4L: quality at the trained length, and length
extrapolation beyond it. Learned positions have no
vector past L: they cannot be evaluated there at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from aiayn.config import DecoderOnlyConfig, LayerConfig
from aiayn.generator import load_language_model
from aiayn.tasks.lm import LMConfig, train_lm
from aiayn.train.config import TrainConfig
from experiments.common import cli, pyplot, save_figure, seed_everything

SCHEMES = ["sinusoidal", "sinusoidal_scaled", "learned", "rope", "alibi", "t5", "shaw", "none"]
TRAIN_LEN = 64


def model_config(kind: str, max_len: int) -> DecoderOnlyConfig:
    """The scheme's model. "sinusoidal_scaled": the paper's sinusoids, with the embeddings
    multiplied by √d_model (§3.4) before they are added; every other scheme, like GPT-2,
    does not scale them."""
    layer = LayerConfig(d_model=128, n_heads=4, d_ff=512, dropout=0.1, norm_first=True,
                        activation="gelu")  # fmt: skip
    scaled = kind == "sinusoidal_scaled"
    return DecoderOnlyConfig(vocab_size=256, n_layers=2, layer=layer,
                             positional="sinusoidal" if scaled else kind, max_len=max_len,
                             scale_embeddings=scaled)  # fmt: skip


@torch.no_grad()
def window_loss(run: Path, text: str, length: int, windows: int) -> float | None:
    """Mean next-character loss over `windows` evenly spaced windows of `length` characters
    of `text`; None where the model cannot take that length (learned positions)."""
    model, tokenizer = load_language_model(run)
    model.eval()
    if model.config.positional == "learned" and length > model.config.max_len:
        return None
    ids = torch.tensor(tokenizer.encode(text))
    starts = torch.linspace(0, len(ids) - length - 2, windows).long()
    batch = torch.stack([ids[s : s + length + 1] for s in starts])  # (N, length + 1)
    logits = model(batch[:, :-1])  # (N, length, V)
    return float(F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()))


def plain_text(text: Path | None, out: Path) -> Path:
    """`text` as a plain-text file: downloaded when None, decompressed when gzipped."""
    if text is None:
        from aiayn.data.shakespeare import download_shakespeare

        return download_shakespeare(out / "data")
    if text.suffix != ".gz":
        return text
    import gzip

    plain = out / "positions_runs" / "input.txt"
    plain.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(text, "rt", encoding="utf-8") as f:
        plain.write_text(f.read(), encoding="utf-8")
    return plain


def run(out: Path, seed: int, smoke: bool, text: Path | None) -> dict[str, Any]:
    seed_everything(seed)
    source, text = str(text), plain_text(text, out).read_text(encoding="utf-8")
    if smoke:
        text = text[:100_000]  # a tenth: the code path, fast
    cut = int(len(text) * 0.9)
    runs = out / "positions_runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "train.txt").write_text(text[:cut], encoding="utf-8")
    (runs / "valid.txt").write_text(text[cut:], encoding="utf-8")
    steps, lengths = (4, [TRAIN_LEN, 2 * TRAIN_LEN]) if smoke else (1500, [64, 128, 256])
    figures: dict[str, Any] = {"text": source, "train_len": TRAIN_LEN, "steps": steps,
                               "lengths": lengths, "loss": {}, "params": {}}  # fmt: skip
    for kind in SCHEMES:
        run_dir = runs / kind
        config = TrainConfig(
            schedule="cosine", peak_lr=2e-3, warmup_steps=max(steps // 10, 1), max_steps=steps,
            valid_every=steps, log_every=max(steps // 10, 1), keep_last=1, best_metric="loss",
            precision="fp32", device="cpu", seed=seed,
        )  # fmt: skip
        # positions up to 4L exist (sinusoids are computed for any length); learned ones past
        # L are never trained, so the evaluation refuses them there
        max_len = TRAIN_LEN if kind == "learned" else 4 * TRAIN_LEN
        if not (run_dir / "model.safetensors").is_file():
            train_lm([runs / "train.txt"], run_dir, model_config(kind, max_len), config,
                     LMConfig(tokenizer="char", batch_size=32, context=TRAIN_LEN),
                     valid_text=[runs / "valid.txt"], progress=False)  # fmt: skip
        valid = text[cut:]
        figures["loss"][kind] = [window_loss(run_dir, valid, n, 8 if smoke else 64)
                                 for n in lengths]  # fmt: skip
        model, _ = load_language_model(run_dir)
        figures["params"][kind] = sum(p.numel() for p in model.parameters())
    loss = figures["loss"]
    best = min(SCHEMES, key=lambda k: loss[k][0])
    figures["answer"] = (
        f"At the trained length {TRAIN_LEN}: " + ", ".join(
            f"{k} {loss[k][0]:.3f}" for k in SCHEMES) + f" nats/char (best: {best}). At "
        f"{lengths[-1]}: " + ", ".join(
            f"{k} {'n/a' if loss[k][-1] is None else f'{loss[k][-1]:.3f}'}" for k in SCHEMES)
        + "."
    )  # fmt: skip
    plot(figures, out / "positions.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, values in figures["loss"].items():
        points = [(n, v) for n, v in zip(figures["lengths"], values, strict=True) if v is not None]
        ax.plot(*zip(*points, strict=True), "o-", label=kind)
    ax.axvline(figures["train_len"], color="k", ls=":", label="trained length")
    ax.set(xscale="log", xlabel="evaluation window (characters)", ylabel="loss (nats/char)",
           title=f"Tiny Shakespeare, {figures['steps']} steps per scheme")  # fmt: skip
    ax.set_xticks(figures["lengths"], [str(n) for n in figures["lengths"]])
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", type=Path, help="Tiny Shakespeare's input.txt (default: download)")


main = cli("positions", __doc__, run, options)


if __name__ == "__main__":
    main()
