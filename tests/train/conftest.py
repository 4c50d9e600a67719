"""A tiny translation problem for training tests: number words, a 1+1-layer model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from aiayn.config import ModelConfig
from aiayn.data.number_words import make_splits, write_splits
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.train.config import TrainConfig

TINY_MODEL = ModelConfig.create(
    d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, dropout=0.1,
    max_len=64,
)  # fmt: skip
TINY_TASK = TranslationConfig(vocab_size=300, max_len=64, max_tokens=400, valid_beam=1)
TASK_FIELDS = {f.name for f in dataclasses.fields(TranslationConfig)}


def tiny_train_config(**overrides) -> TrainConfig:
    """The tiny run's training options, on the CPU whatever the machine has ("auto" would pick a
    GPU): the bit-exact resume, EMA and precision checks hold for CPU arithmetic. The CUDA
    counterparts are in tests/test_cuda.py."""
    fields = dict(
        schedule="inverse_sqrt", peak_lr=3e-3, warmup_steps=5, max_steps=6, valid_every=3,
        log_every=1, keep_last=3, device="cpu",
    )  # fmt: skip
    fields.update(overrides)
    return TrainConfig(**fields)


@pytest.fixture(scope="session")
def number_data(tmp_path_factory) -> Path:
    """train/valid/test .en/.de files: 600 / 16 / 16 pairs."""
    out = tmp_path_factory.mktemp("numbers")
    write_splits(make_splits(600, 16, 16, seed=3), out)
    return out


def files(data: Path) -> tuple[Path, Path, Path, Path]:
    return data / "train.en", data / "train.de", data / "valid.en", data / "valid.de"


def train(data: Path, out: Path, resume: bool = False, **overrides):
    """Train the tiny model on `data` into `out`; `overrides` change `tiny_train_config`, or
    `TINY_TASK` for a translation option."""
    task = {k: overrides.pop(k) for k in list(overrides) if k in TASK_FIELDS}
    return train_translation(
        *files(data), out, TINY_MODEL, tiny_train_config(**overrides), TINY_TASK.replace(**task),
        resume=resume, progress=False,
    )  # fmt: skip


def records(out: Path, split: str) -> list[dict]:
    """The run's metrics.jsonl records of one split ("train", "valid", …)."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]
