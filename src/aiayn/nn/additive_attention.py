"""Additive attention (Bahdanau et al. 2015) in place of eq. 1's dot product — a variant, not
in the paper, kept to answer "why a dot product?" (docs/why.md, question 3).

    score(q_i, k_j) = v_hᵀ tanh(q_i + k_j)          per head h, q = x W_Q, k = x W_K

Bahdanau's two maps W and U are the heads' W_Q and W_K themselves (a further linear map after
them would fold into them), and each head adds one vector v_h of Dh entries: d_model more
parameters per attention. The paper (§3.2.1): additive attention "outperforms dot product
attention without scaling for larger values of d_k", but dot product "is much faster and more
space-efficient in practice, since it can be implemented using highly optimized matrix
multiplication code" — the tanh needs every (query, key) pair's Dh-vector: (B, H, T, S, Dh).

`AdditiveAttention` is a `MultiHeadAttention` (same W_Q, W_K, W_V, W_O, caches, masks) whose
`attend` scores this way; the softmax, masking and weighting of V are eq. 1's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aiayn.nn.attention import Impl, MultiHeadAttention
from aiayn.nn.dropout import dropout
from aiayn.nn.masks import causal_mask, combine
from aiayn.nn.trace import record


class AdditiveAttention(MultiHeadAttention):
    """Multi-head attention scored by vᵀ tanh(q + k) instead of q·k/√d_k."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        impl: Impl = "auto",
    ) -> None:
        super().__init__(d_model, n_heads, dropout, bias, impl)
        self.v = nn.Parameter(torch.empty(n_heads, self.head_dim))  # one v per head
        # Var(score) ≈ 1 at the start: Dh terms tanh(·)·v with v ~ N(0, 1/Dh).
        nn.init.normal_(self.v, std=self.head_dim**-0.5)

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
        dropout_p: float,
        offset: int,
        cached: bool,
        need_weights: bool,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Shape: q (B, H, T, Dh), k and v (B, H, S, Dh), mask bool broadcastable to
        (B, H, T, S), bias float broadcastable to (B, H, T, S) -> out (B, H, T, Dh),
        weights (B, H, T, S) | None."""
        if is_causal:
            mask = combine(mask, causal_mask(q.shape[-2], k.shape[-2], device=q.device))
        hidden = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # (B, H, T, S, Dh)
        scores = torch.einsum("bhtsd,hd->bhts", hidden, self.v)  # (B, H, T, S)
        record("scores vᵀ tanh(q + k)", scores)
        if bias is not None:
            scores = scores + bias
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))  # exactly 0 weight after softmax
        weights = scores.softmax(dim=-1)  # (B, H, T, S)
        if dropout_p > 0.0:
            weights = dropout(weights, dropout_p)
        out = weights @ v  # (B, H, T, Dh)
        return out, (weights if need_weights else None)


__all__ = ["AdditiveAttention"]
