"""Encoder and decoder layers (§3.1, Figure 1)."""

from __future__ import annotations

from torch import Tensor, nn

from aiayn.nn.attention import Impl, MultiHeadAttention
from aiayn.nn.feed_forward import PositionwiseFeedForward
from aiayn.nn.kv_cache import KVCache, StaticKV
from aiayn.nn.positional import PositionalEncoding
from aiayn.nn.residual import Residual


class EncoderLayer(nn.Module):
    """Self-attention → FFN, each in a residual + dropout + LayerNorm (Fig. 1, left)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        eps: float = 1e-5,
        impl: Impl = "sdpa",
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, impl=impl)
        self.res_attn = Residual(d_model, dropout, norm_first, eps)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, activation)
        self.res_ffn = Residual(d_model, dropout, norm_first, eps)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        positional: PositionalEncoding | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Shape: x (B, S, D), mask (B, 1, 1|S, S) bool -> (B, S, D), weights (B, H, S, S)|None."""
        y, weights = self.self_attn(
            self.res_attn.before(x), mask=mask, positional=positional, need_weights=need_weights
        )
        x = self.res_attn.after(x, y)
        x = self.res_ffn.after(x, self.ffn(self.res_ffn.before(x)))
        return x, weights


class DecoderLayer(nn.Module):
    """Masked self-attention → cross-attention over the encoder output → FFN (Fig. 1, right)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        eps: float = 1e-5,
        impl: Impl = "sdpa",
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, impl=impl)
        self.res_self = Residual(d_model, dropout, norm_first, eps)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, impl=impl)
        self.res_cross = Residual(d_model, dropout, norm_first, eps)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, activation)
        self.res_ffn = Residual(d_model, dropout, norm_first, eps)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        self_cache: KVCache | None = None,
        cross_cache: StaticKV | None = None,
        positional: PositionalEncoding | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Shape: x (B, T, D), memory (B, S, D), self_mask (B|1, 1, T, T_past+T) bool,
        memory_mask (B, 1, 1, S) bool -> (B, T, D), self weights (B, H, T, T_past+T) | None,
        cross weights (B, H, T, S) | None.

        With caches, x holds only the new steps; `memory` may be None once `cross_cache` is
        filled, since the encoder's K/V are then reused.
        """
        y, self_w = self.self_attn(
            self.res_self.before(x),
            mask=self_mask,
            cache=self_cache,
            positional=positional,
            need_weights=need_weights,
        )
        x = self.res_self.after(x, y)
        y, cross_w = self.cross_attn(
            self.res_cross.before(x),
            memory,
            mask=memory_mask,
            cache=cross_cache,
            need_weights=need_weights,
        )
        x = self.res_cross.after(x, y)
        x = self.res_ffn.after(x, self.ffn(self.res_ffn.before(x)))
        return x, self_w, cross_w
