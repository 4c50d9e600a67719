"""Output heads on an encoder's final vectors: BERT's masked-LM head and sequence pooling.

MaskedLMHead:  h → LayerNorm(act(h·W + b)) → ·Eᵀ + b_vocab   (E: the token embedding)
pool:          "cls"  → tanh(h_[CLS]·W + b)   (BERT's pooler, trained by next-sentence
                                               prediction in BERT, by the task here)
               "mean" → mean of the real tokens' h   (Sentence-BERT)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aiayn.nn.embeddings import TokenEmbedding
from aiayn.nn.feed_forward import activation_function

CLS = slice(0, 1)  # the [CLS] position: all a "cls" head (BERT's pooler, ViT's) reads


class MaskedLMHead(nn.Module):
    """Predicts the token at each position: a transform (dense, activation, LayerNorm) then
    logits against the token embedding matrix (tied: one tensor), plus a per-token bias."""

    def __init__(self, d_model: int, embed: TokenEmbedding, activation: str, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.activation = activation_function(activation)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.weight = embed.weight  # tied: the same Parameter
        self.bias = nn.Parameter(torch.zeros(embed.weight.shape[0]))

    def forward(self, hidden: Tensor) -> Tensor:
        """Shape: hidden (..., D) -> logits (..., V)."""
        h = self.norm(self.activation(self.dense(hidden)))
        return nn.functional.linear(h, self.weight, self.bias)


class Pooler(nn.Module):
    """BERT's pooler: tanh(W·h_[CLS] + b), the sequence's vector for a classifier."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: Tensor) -> Tensor:
        """Shape: hidden (B, T, D) -> (B, D), from position 0 ([CLS])."""
        return torch.tanh(self.dense(hidden[:, 0]))


def mean_pool(hidden: Tensor, real: Tensor) -> Tensor:
    """The mean of the real (non-padding) positions' vectors.

    Shape: hidden (B, T, D), real (B, T) bool -> (B, D).
    """
    weights = real.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


__all__ = ["CLS", "MaskedLMHead", "Pooler", "mean_pool"]
