"""The one stack every family uses: embed → positions → dropout → N blocks → final norm.

BERT adds two things before the dropout, both off by default: extra input vectors summed with
the token embeddings (its segment embeddings, `added=`), and a LayerNorm over the sum
(`embed_norm`).

The encoder and the decoder of the paper and a decoder-only model differ only in their blocks'
switches (`causal`, `cross_attention`); the skeleton around them is this one class.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from aiayn.config import LayerConfig
from aiayn.nn.attention import MultiHeadAttention
from aiayn.nn.block import Block
from aiayn.nn.dropout import Dropout
from aiayn.nn.kv_cache import DecoderCache
from aiayn.nn.norms import build_norm
from aiayn.nn.positional import PositionalEncoding
from aiayn.nn.sliding_window import SlidingWindowAttention
from aiayn.nn.trace import record


class Stack(nn.Module):
    """Embed + positions → dropout → N × Block (→ final LayerNorm when pre-LN).

    `embed` maps ids to vectors (B, T) -> (B, T, D) (a `TokenEmbedding`, or a patch embedding
    for images, (B, C, H, W) -> (B, T, D)); it may be shared with another stack (tied
    embeddings). `mixer`, when given, makes each block's token mixer in place of
    self-attention (PoolFormer's pooling): called once per block.
    """

    def __init__(
        self,
        layer: LayerConfig,
        n_layers: int,
        embed: nn.Module,
        positional: PositionalEncoding,
        causal: bool = False,
        cross_attention: bool = False,
        name: str = "stack",
        embed_norm: bool = False,
        mixer: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.embed = embed
        self.positional = positional
        # BERT normalises the embedding sum; the paper and GPT-2 do not
        self.embed_norm = (
            build_norm(layer.norm, layer.d_model, layer.layer_norm_eps) if embed_norm else None
        )
        self.dropout = Dropout(layer.dropout)  # §5.4: on the sums of embeddings and positions
        self.layers = nn.ModuleList(
            Block(layer, causal, cross_attention, mixer() if mixer is not None else None)
            for _ in range(n_layers)
        )
        # Pre-LN leaves the residual stream un-normalised; post-LN's last sub-layer already norms.
        self.norm = (
            build_norm(layer.norm, layer.d_model, layer.layer_norm_eps)
            if layer.norm_first
            else None
        )
        self.name = name
        # Relative schemes (RoPE, …) act inside self-attention; absolute ones only in `embed`.
        self._in_attention = positional if positional.acts_in_attention else None
        # Whether the last block may let only the kept positions query it (`_keeps_last`):
        # no causality, no relative scheme (it needs the queries' positions), no BatchNorm
        # (its statistics would see fewer tokens) — and a full-attention mixer, checked when
        # called, since an experiment may swap a block's mixer after construction.
        self._may_keep_last = not causal and self._in_attention is None and layer.norm != "batch"

    @property
    def _keeps_last(self) -> bool:
        """Whether the last block can skip the queries of the positions a head ignores: full
        attention only (a window or a pooling mixer mixes by position)."""
        last = self.layers[-1].self_attn if self.layers else None
        return (
            self._may_keep_last
            and isinstance(last, MultiHeadAttention)
            and not isinstance(last, SlidingWindowAttention)
        )

    def forward(
        self,
        ids: Tensor,
        mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cache: DecoderCache | None = None,
        offset: int | Tensor | None = None,
        need_weights: bool = False,
        added: Tensor | None = None,
        real: Tensor | None = None,
        keep_last: slice | None = None,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Shape: ids (B, T) long — only the new steps when `cache` is given —, mask bool
        broadcastable to (B, 1, T, T_past+T), memory (B, S, D), memory_mask (B, 1, 1, S)
        -> hidden (B, T, D), per-layer self weights [(B, H, T, T_past+T)] and cross weights
        [(B, H, T, S)] (empty unless need_weights).

        `offset`: position of the first id, an int or one per row (B,) (left-padded prompts);
        default: the number of cached steps. `added` (B, T, D): summed with the token
        embeddings (BERT's segment embeddings). `real` (B, T) bool: the non-padding tokens,
        which a BatchNorm's statistics are taken over (unset: every token). `keep_last`: the
        positions a head reads (BERT's and ViT's [CLS]: `slice(0, 1)`): hidden is then
        (B, len(keep_last), D), and where the last block allows it (`_keeps_last`) only those
        positions query it — a classifier skips most of the last layer's work.
        """
        if offset is None:
            offset = cache.length if cache is not None else 0
        x = self.embed(ids)  # (B, T, D)
        if added is not None:
            x = x + added
        x = self.positional.embed(x, offset)
        if self.embed_norm is not None:
            x = self.embed_norm(x, real)
        x = self.dropout(x)
        self_ws, cross_ws = [], []
        inside = keep_last is not None and cache is None and not need_weights and self._keeps_last
        last = len(self.layers) - 1
        for i, block in enumerate(self.layers):
            x, sw, cw = block(
                x, mask, memory, memory_mask,
                cache=cache.self_attn[i] if cache is not None else None,
                cross_cache=cache.cross_attn[i] if cache is not None and cache.cross_attn else None,
                positional=self._in_attention, need_weights=need_weights, real=real,
                keep=keep_last if inside and i == last else None,
            )  # fmt: skip
            if sw is not None:
                self_ws.append(sw)
            if cw is not None:
                cross_ws.append(cw)
        if inside and real is not None:
            real = real[:, keep_last]  # x holds only the kept positions now
        if self.norm is not None:
            x = self.norm(x, real)
        if keep_last is not None and not inside:
            x = x[:, keep_last]  # after the final norm: a BatchNorm's statistics saw every token
        record(f"{self.name} output", x)
        return x, self_ws, cross_ws


__all__ = ["Stack"]
