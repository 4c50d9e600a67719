"""Encoder and decoder layers (§3.1, Figure 1)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from aiayn.nn.attention import Impl, MultiHeadAttention
from aiayn.nn.feed_forward import PositionwiseFeedForward
from aiayn.nn.kv_cache import KVCache, StaticKV
from aiayn.nn.positional import PositionalEncoding
from aiayn.nn.residual import Residual


@dataclass(frozen=True)
class LayerSpec:
    """The sizes and switches every encoder/decoder layer is built from."""

    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1  # on each sub-layer's output, before the residual add (§5.4)
    attention_dropout: float = 0.0  # on the attention weights
    activation_dropout: float = 0.0  # on the FFN's inner activations
    activation: str = "relu"
    norm_first: bool = False  # False: post-LN as in the paper; True: pre-LN
    eps: float = 1e-5
    impl: Impl = "auto"
    # Local self-attention: each position sees positions at most this far away (causal in the
    # decoder); None = full attention (the paper). Cross-attention is never windowed.
    window: int | None = None

    def attention(self) -> MultiHeadAttention:
        """Full attention: cross-attention, or self-attention of a model without a window."""
        return MultiHeadAttention(
            self.d_model, self.n_heads, self.attention_dropout, impl=self.impl
        )

    def self_attention(self, causal: bool) -> MultiHeadAttention:
        """Self-attention, local when `window` is set (causal: the decoder's)."""
        if self.window is None:
            return self.attention()  # full attention: causality comes from the mask alone
        # (imported here only until the block rewrite moves it to the module's imports)
        from aiayn.nn.sliding_window import SlidingWindowAttention

        return SlidingWindowAttention(
            self.d_model,
            self.n_heads,
            self.attention_dropout,
            impl=self.impl,
            window=self.window,
            causal=causal,
        )

    def residual(self) -> Residual:
        return Residual(self.d_model, self.dropout, self.norm_first, self.eps)

    def feed_forward(self) -> PositionwiseFeedForward:
        return PositionwiseFeedForward(
            self.d_model, self.d_ff, self.activation, self.activation_dropout
        )


class EncoderLayer(nn.Module):
    """Self-attention → FFN, each in a residual + dropout + LayerNorm (Fig. 1, left)."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.self_attn = spec.self_attention(causal=False)
        self.res_attn = spec.residual()
        self.ffn = spec.feed_forward()
        self.res_ffn = spec.residual()

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        positional: PositionalEncoding | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Shape: x (B, S, D), mask (B, 1, 1|S, S) bool -> (B, S, D), weights (B, H, S, S)|None.

        With `spec.window` the mask must be the key-padding mask (B, 1, 1, S) or None."""
        y, weights = self.self_attn(
            self.res_attn.before(x), mask=mask, positional=positional, need_weights=need_weights
        )
        x = self.res_attn.after(x, y)
        x = self.res_ffn.after(x, self.ffn(self.res_ffn.before(x)))
        return x, weights


class DecoderLayer(nn.Module):
    """Masked self-attention → cross-attention over the encoder output → FFN (Fig. 1, right)."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.self_attn = spec.self_attention(causal=True)
        self.res_self = spec.residual()
        self.cross_attn = spec.attention()
        self.res_cross = spec.residual()
        self.ffn = spec.feed_forward()
        self.res_ffn = spec.residual()

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

        With `spec.window` and no cache, self_mask is the target key-padding mask (B, 1, 1, T)
        or None: the window path supplies causality. With a cache it is combined with the band.
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
