"""BERT's masked-language-model corruption (Devlin et al. 2019, §3.1 and appendix A.1).

Of the positions that may be predicted (never [CLS], [SEP], padding), each is selected with
probability `rate` (15%); a selected position is the model's target, and its input becomes
[MASK] 80% of the time, a random token 10%, and stays itself 10% (so the model cannot learn that
only [MASK] positions matter). Called at collation time, every batch gets a fresh draw: each
epoch sees new masks (RoBERTa's dynamic masking) rather than the one masking per example that
BERT fixed while preprocessing.

Whole-word masking (BERT's 2019 update): a word is selected with probability `rate` and all
its WordPieces become targets, so "phil ##har ##monic" is never half given away.

The draws come from torch's global generator, which checkpoints save and restore, so a resumed
run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

#: The label of a position that is not a target: `F.cross_entropy(ignore_index=IGNORE)`.
IGNORE = -100


@dataclass(frozen=True)
class Masking:
    """How to corrupt a batch: BERT's 15% and 80/10/10 by default."""

    mask_id: int
    vocab_size: int
    special_ids: frozenset[int]  # never selected, never drawn as a random replacement
    rate: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"masking rate must be in (0, 1), got {self.rate}")
        fractions = (self.mask_fraction, self.random_fraction)
        if min(fractions) < 0 or sum(fractions) > 1:
            raise ValueError("mask_fraction and random_fraction must be >= 0 with sum <= 1")

    def apply(
        self, ids: Tensor, words: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Corrupted inputs and the targets to predict.

        Shape: ids (B, T) long; words (B, T) long, each token's word index within its row
        (-1 for special tokens and padding), for whole-word masking; None = token by token
        -> inputs (B, T) long, targets (B, T) long: the original id where selected, else
        IGNORE.
        """
        special = torch.isin(ids, self._special)  # (B, T)
        if words is None:
            draw = torch.rand(ids.shape, generator=generator)  # (B, T)
        else:
            # one draw per (row, word), shared by the word's pieces
            n_words = int(words.max()) + 1 if words.numel() else 0
            per_word = torch.rand((ids.shape[0], max(n_words, 1)), generator=generator)
            draw = per_word.gather(1, words.clamp(min=0))  # (B, T)
            special |= words < 0
        selected = (draw < self.rate) & ~special  # (B, T)
        targets = torch.where(selected, ids, torch.full_like(ids, IGNORE))
        how = torch.rand(ids.shape, generator=generator)  # (B, T): which of the three
        to_mask = selected & (how < self.mask_fraction)
        to_random = selected & (how >= self.mask_fraction) & (
            how < self.mask_fraction + self.random_fraction
        )  # fmt: skip
        inputs = ids.masked_fill(to_mask, self.mask_id)
        if bool(to_random.any()):
            inputs = torch.where(to_random, self._random_tokens(ids.shape, generator), inputs)
        return inputs, targets

    @functools.cached_property
    def _special(self) -> Tensor:
        return torch.tensor(sorted(self.special_ids), dtype=torch.long)

    @functools.cached_property
    def _ordinary(self) -> Tensor:
        """The ids a random replacement is drawn from: every id but the specials. Built once,
        not per batch (a Python pass over the vocabulary)."""
        ids = torch.arange(self.vocab_size)
        return ids[~torch.isin(ids, self._special)]

    def _random_tokens(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        """Uniform over the vocabulary's ordinary tokens. Shape: -> shape, long."""
        pick = torch.randint(len(self._ordinary), shape, generator=generator)
        return self._ordinary[pick]


__all__ = ["IGNORE", "Masking"]
