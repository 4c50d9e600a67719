"""Training runs on the number-words task (`aiayn demo`'s data: English number words to German,
test numbers never seen in training), shared by the experiments that compare model variants
at one small, fixed budget."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from aiayn.config import ModelConfig
from aiayn.data.number_words import make_splits, write_splits
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.train.config import TrainConfig
from aiayn.visualize.curves import read_metrics


def fresh_data(runs: Path, smoke: bool, seed: int) -> Path:
    """Empty `runs` (an experiment's own scratch) and write the splits in `runs/data`."""
    shutil.rmtree(runs, ignore_errors=True)
    data = runs / "data"
    write_splits(make_splits(300 if smoke else 20_000, 100 if smoke else 300, 8, seed=seed), data)
    return data


def small_model(layers: int = 2, **fields: Any) -> ModelConfig:
    """An encoder-decoder of d_model 128 for the 400-token number-words vocabulary."""
    return ModelConfig.create(
        d_model=128, n_heads=4, d_ff=512, n_encoder_layers=layers, n_decoder_layers=layers,
        dropout=0.1, max_len=64, src_vocab_size=400, tgt_vocab_size=400, **fields,
    )  # fmt: skip


def train_numbers(data: Path, out: Path, model: ModelConfig, steps: int, seed: int,
                  **train: Any) -> dict[str, Any]:  # fmt: skip
    """Train `model` for `steps` steps (peak lr 2e-3, cosine, fp32 unless `train` says
    otherwise); its validation curve (loss, greedy exact match) and training losses."""
    fields = dict(
        schedule="cosine", peak_lr=2e-3, warmup_steps=max(steps // 6, 1), max_steps=steps,
        valid_every=max(steps // 10, 1), log_every=max(steps // 20, 1), keep_last=1,
        best_metric="loss", clip_norm=0.0, precision="fp32", device="cpu", seed=seed,
    )  # fmt: skip
    fields.update(train)
    task = TranslationConfig(vocab_size=400, max_len=64, max_tokens=3000, valid_beam=1)
    result = train_translation(
        data / "train.en", data / "train.de", data / "valid.en", data / "valid.de", out,
        model, TrainConfig(**fields), task, progress=False,
    )  # fmt: skip
    valid = read_metrics(out / "metrics.jsonl", "valid")
    return {
        "valid": [
            {"step": r["step"], "loss": r["loss"], "exact_match": r.get("exact_match")}
            for r in valid
        ],
        "train_loss": [r["loss"] for r in read_metrics(out / "metrics.jsonl", "train")],
        "best_valid_loss": result.best,
    }


def last_valid(run: dict[str, Any]) -> str:
    """'loss (exact match)' at the last validation, for an experiment's answer line."""
    last = run["valid"][-1] if run["valid"] else {}
    em = last.get("exact_match")
    return f"{last.get('loss', float('nan')):.2f}" + (f" ({em:.1%})" if em is not None else "")
