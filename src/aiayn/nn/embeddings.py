"""Token embeddings and the pre-softmax projection (§3.4), with optional weight tying."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aiayn.nn.trace import record


class TokenEmbedding(nn.Module):
    """ids -> vectors, multiplied by √d_model (§3.4).

    The scale brings N(0, 1/d_model)-initialised embeddings to unit variance, the magnitude of
    the sinusoidal encodings they are added to, so neither drowns the other at the start.
    GPT-2 does without it (`scale=False`): its embeddings and learned positions are both
    initialised small, N(0, 0.02²).
    """

    def __init__(self, vocab_size: int, d_model: int, scale: bool = True) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = math.sqrt(d_model) if scale else 1.0
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        nn.init.normal_(self.weight, std=d_model**-0.5)

    def forward(self, ids: Tensor) -> Tensor:
        """Shape: ids (B, T) long -> (B, T, D)."""
        out = nn.functional.embedding(ids, self.weight)
        if self.scale != 1.0:
            out = out * self.scale  # §3.4
        record("embedding lookup" + (" × √d_model" if self.scale != 1.0 else ""), out)
        return out


class OutputProjection(nn.Module):
    """Decoder output -> logits over the target vocabulary (the "Linear" before softmax).

    With tying, `weight` IS the target embedding's parameter (one tensor, not a copy): the
    paper shares it "between the two embedding layers and the pre-softmax linear transformation".
    """

    def __init__(self, d_model: int, vocab_size: int, tied_to: TokenEmbedding | None = None):
        super().__init__()
        if tied_to is not None:
            self.weight = tied_to.weight
        else:
            self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
            nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Shape: x (B, T, D) -> logits (B, T, V)."""
        out = nn.functional.linear(x, self.weight)
        record("logits x·Eᵀ", out)
        return out
