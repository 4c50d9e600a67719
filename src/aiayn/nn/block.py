"""The one Transformer block every family stacks (§3.1, Figure 1).

    self-attention (causal or not) → [cross-attention over a memory] → feed-forward,

each sub-layer inside a `Residual` (dropout, add, LayerNorm after or before). Switches, not
subclasses, make the family:

    encoder (paper, BERT, ViT)    Block(layer)
    decoder (paper)               Block(layer, causal=True, cross_attention=True)
    decoder-only (GPT)            Block(layer, causal=True)
    PoolFormer                    Block(layer, mixer=PoolingMixer(3))

The token mixer is self-attention unless another module is passed in (`mixer`): anything
answering attention's call `mixer(x, mask=, cache=, positional=, need_weights=, is_causal=)
-> (out, weights | None)`. It keeps the attribute name `self_attn`, so that state dicts of
attention models read as before.

A causal block's self-attention takes a `KVCache` for incremental decoding; a cross-attending
block's cross-attention takes a `StaticKV` (the memory's K/V, computed once).
"""

from __future__ import annotations

from torch import Tensor, nn

from aiayn.config import LayerConfig
from aiayn.nn.attention import MultiHeadAttention
from aiayn.nn.feed_forward import PositionwiseFeedForward
from aiayn.nn.kv_cache import KVCache, StaticKV
from aiayn.nn.positional import PositionalEncoding
from aiayn.nn.residual import Residual
from aiayn.nn.sliding_window import SlidingWindowAttention


def self_attention(layer: LayerConfig, causal: bool) -> MultiHeadAttention:
    """Full self-attention (causality then comes from the mask), or local when
    `layer.attention_window` is set (the window applies causality itself)."""
    args = (
        layer.d_model, layer.n_heads, layer.attention_dropout, layer.bias, layer.attention_impl,
        layer.d_k,
    )  # fmt: skip
    if layer.attention_window is None:
        return MultiHeadAttention(*args)
    return SlidingWindowAttention(*args, window=layer.attention_window, causal=causal)


class Block(nn.Module):
    """Self-attention (or another token mixer) → [cross-attention] → FFN, each in residual +
    dropout + LayerNorm."""

    def __init__(
        self,
        layer: LayerConfig,
        causal: bool = False,
        cross_attention: bool = False,
        mixer: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.self_attn = mixer if mixer is not None else self_attention(layer, causal)
        self.res_self = self._residual(layer)
        self.cross_attn = self.res_cross = None
        if cross_attention:  # cross-attention is never windowed: the whole source is relevant
            self.cross_attn = MultiHeadAttention(
                layer.d_model, layer.n_heads, layer.attention_dropout, layer.bias,
                layer.attention_impl, layer.d_k,
            )  # fmt: skip
            self.res_cross = self._residual(layer)
        self.ffn = PositionwiseFeedForward(
            layer.d_model, layer.d_ff, layer.activation, layer.activation_dropout, layer.bias
        )
        self.res_ffn = self._residual(layer)
        # Directories saved before the one block named the encoder's residual `res_attn`.
        self._register_load_state_dict_pre_hook(_rename_old_encoder_residual)

    @staticmethod
    def _residual(layer: LayerConfig) -> Residual:
        return Residual(
            layer.d_model, layer.dropout, layer.norm_first, layer.layer_norm_eps, layer.norm
        )

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cache: KVCache | None = None,
        cross_cache: StaticKV | None = None,
        positional: PositionalEncoding | None = None,
        need_weights: bool = False,
        real: Tensor | None = None,
        keep: slice | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Shape: x (B, T, D), mask bool broadcastable to (B, 1, T, T_past+T), memory (B, S, D),
        memory_mask (B, 1, 1, S) bool -> (B, T, D), self weights (B, H, T, T_past+T) | None,
        cross weights (B, H, T, S) | None (weights only with need_weights).

        A causal block applies causality itself when `mask` is None and the cache holds no past
        (training, a first step); given a mask, the mask must say it. With a `cache`, x holds
        only the new steps and the cache supplies the past (one new step may see all of it).
        `memory` may be None once `cross_cache` is filled (the memory's K/V are reused). A
        windowed block without a cache takes only a key-padding mask (B, 1, 1, T): the window
        supplies band and causality. `real` (B, T) marks non-padding tokens, for a BatchNorm.

        `keep` (the last block under a head that reads only some positions, e.g. [CLS]): only
        those positions query and leave the block, (B, T, D) -> (B, len(keep), D); every
        position still gives keys and values. The same numbers as slicing the full output,
        for a non-causal attention mixer without a cache or a relative position scheme.
        """
        # A causal block given no mask over a whole sequence (no past in the cache): SDPA's
        # causal kernels instead of a (T, T) mask. A window applies its own causality.
        is_causal = self.causal and mask is None and (cache is None or cache.length == 0)
        h = self.res_self.before(x, real)
        query, keys = h, {}  # self-attention: its query is its keys' and values' source
        if keep is not None:
            query, keys, x = h[:, keep], {"key_value": h}, x[:, keep]
            real = None if real is None else real[:, keep]
            if mask is not None and mask.shape[-2] > 1:  # a mask per query row
                mask = mask[..., keep, :]
        y, self_w = self.self_attn(
            query, mask=mask, cache=cache, positional=positional, need_weights=need_weights,
            is_causal=is_causal, **keys,
        )  # fmt: skip
        x = self.res_self.after(x, y, real)
        cross_w = None
        if self.cross_attn is not None:
            y, cross_w = self.cross_attn(
                self.res_cross.before(x, real), memory, mask=memory_mask, cache=cross_cache,
                need_weights=need_weights,
            )  # fmt: skip
            x = self.res_cross.after(x, y, real)
        x = self.res_ffn.after(x, self.ffn(self.res_ffn.before(x, real)), real)
        return x, self_w, cross_w


def _rename_old_encoder_residual(state_dict, prefix, *args) -> None:
    """`…layers.N.res_attn.*` (encoder layers up to schema 1) → `…layers.N.res_self.*`."""
    old = prefix + "res_attn."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "res_self." + key[len(old) :]] = state_dict.pop(key)


__all__ = ["Block", "self_attention"]
