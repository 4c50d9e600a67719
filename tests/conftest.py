"""Shared fixtures: seeded RNG and small models for invariance tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aiayn.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

PAD, BOS, EOS = 0, 1, 2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def small_config(**overrides) -> ModelConfig:
    """A 2+2-layer model small enough for exhaustive checks, dropout off."""
    fields = dict(
        src_vocab_size=50,
        tgt_vocab_size=50,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.0,
        max_len=64,
    )
    fields.update(overrides)
    return ModelConfig.create(**fields)


def random_ids(batch: int, length: int, vocab: int = 50, low: int = 3) -> torch.Tensor:
    """Token ids that are never pad/bos/eos. Shape: (batch, length)."""
    return torch.randint(low, vocab, (batch, length))
