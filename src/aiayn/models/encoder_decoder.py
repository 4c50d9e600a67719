"""The encoder-decoder Transformer of the paper (Figure 1), assembled from `aiayn.nn` blocks."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from aiayn.config import ModelConfig
from aiayn.nn.dropout import Dropout
from aiayn.nn.embeddings import OutputProjection, TokenEmbedding
from aiayn.nn.kv_cache import DecoderCache
from aiayn.nn.layers import DecoderLayer, EncoderLayer, LayerSpec
from aiayn.nn.masks import causal_mask, combine, padding_mask
from aiayn.nn.positional import PositionalEncoding, build_positional
from aiayn.nn.trace import record


def layer_spec(cfg: ModelConfig) -> LayerSpec:
    """The per-layer settings of `cfg`."""
    return LayerSpec(
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_ff=cfg.d_ff,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        activation=cfg.activation,
        norm_first=cfg.norm_first,
        eps=cfg.layer_norm_eps,
        impl=cfg.attention_impl,
        window=cfg.attention_window,
    )


def _in_attention(positional: PositionalEncoding) -> PositionalEncoding | None:
    """The scheme to hand self-attention layers, or None for purely additive ones."""
    return positional if positional.acts_in_attention else None


class Encoder(nn.Module):
    """Embed + positions → dropout → N × EncoderLayer (→ final LayerNorm when pre-LN)."""

    def __init__(self, cfg: ModelConfig, embed: TokenEmbedding) -> None:
        super().__init__()
        self.embed = embed
        self.positional = build_positional(cfg.positional, cfg.d_model, cfg.n_heads, cfg.max_len)
        self.dropout = Dropout(cfg.dropout)  # §5.4: on the sums of embeddings and positions
        self.layers = nn.ModuleList(
            EncoderLayer(layer_spec(cfg)) for _ in range(cfg.n_encoder_layers)
        )
        # Pre-LN leaves the residual stream un-normalised; post-LN's last sub-layer already norms.
        self.norm = nn.LayerNorm(cfg.d_model, cfg.layer_norm_eps) if cfg.norm_first else None

    def forward(
        self, src: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """Shape: src (B, S) long, mask (B, 1, 1, S) bool -> memory (B, S, D),
        per-layer self-attention weights [(B, H, S, S)] (empty unless need_weights)."""
        x = self.dropout(self.positional.embed(self.embed(src)))  # (B, S, D)
        in_attn = _in_attention(self.positional)
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, positional=in_attn, need_weights=need_weights)
            if w is not None:
                weights.append(w)
        if self.norm is not None:
            x = self.norm(x)
        record("encoder output (memory)", x)
        return x, weights


class Decoder(nn.Module):
    """Embed + positions → dropout → N × DecoderLayer (→ final LayerNorm when pre-LN)."""

    def __init__(self, cfg: ModelConfig, embed: TokenEmbedding) -> None:
        super().__init__()
        self.embed = embed
        self.positional = build_positional(cfg.positional, cfg.d_model, cfg.n_heads, cfg.max_len)
        self.dropout = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(layer_spec(cfg)) for _ in range(cfg.n_decoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model, cfg.layer_norm_eps) if cfg.norm_first else None

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor | None,
        self_mask: Tensor | None,
        memory_mask: Tensor | None,
        cache: DecoderCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Shape: tgt (B, T) long — only the new steps when `cache` is given —, memory (B, S, D)
        -> hidden (B, T, D), self weights [(B, H, T, T_all)], cross weights [(B, H, T, S)]."""
        offset = cache.length if cache is not None else 0
        x = self.dropout(self.positional.embed(self.embed(tgt), offset))  # (B, T, D)
        in_attn = _in_attention(self.positional)
        self_ws, cross_ws = [], []
        for i, layer in enumerate(self.layers):
            x, sw, cw = layer(
                x,
                memory,
                self_mask,
                memory_mask,
                self_cache=cache.self_attn[i] if cache is not None else None,
                cross_cache=cache.cross_attn[i] if cache is not None else None,
                positional=in_attn,
                need_weights=need_weights,
            )
            if need_weights:
                self_ws.append(sw)
                cross_ws.append(cw)
        if self.norm is not None:
            x = self.norm(x)
        record("decoder output", x)
        return x, self_ws, cross_ws


@dataclass
class AttentionMaps:
    """Per-layer attention weights of one teacher-forced forward pass."""

    logits: Tensor  # (B, T, V)
    encoder_self: list[Tensor] = field(default_factory=list)  # [(B, H, S, S)] per layer
    decoder_self: list[Tensor] = field(default_factory=list)  # [(B, H, T, T)]
    decoder_cross: list[Tensor] = field(default_factory=list)  # [(B, H, T, S)]


class EncoderDecoder(nn.Module):
    """The Transformer: `encode` the source once, `decode` the target (all at once or step by
    step with a `DecoderCache`), or `forward` both with teacher forcing for training.

    Ids: `pad_id` from the config marks padding in both src and tgt.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        src_embed = TokenEmbedding(config.src_vocab_size, config.d_model)
        # §3.4: one matrix for source embedding, target embedding and pre-softmax projection.
        tgt_embed = (
            src_embed
            if config.tie_embeddings == "all"
            else TokenEmbedding(config.tgt_vocab_size, config.d_model)
        )
        self.encoder = Encoder(config, src_embed)
        self.decoder = Decoder(config, tgt_embed)
        tied = tgt_embed if config.tie_embeddings in ("all", "decoder") else None
        self.generator = OutputProjection(config.d_model, config.tgt_vocab_size, tied_to=tied)
        self._init_projections()

    def _init_projections(self) -> None:
        """Xavier-uniform for every linear map, zero biases (as tensor2tensor and the Annotated
        Transformer). Embeddings keep N(0, 1/d_model), so ×√d_model gives unit variance."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # --- the three entry points ---------------------------------------------------------------

    def encode(self, src: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor]:
        """Shape: src (B, S) long -> memory (B, S, D), memory_mask (B, 1, 1, S) bool."""
        memory_mask = padding_mask(src, self.config.pad_id)
        memory, _ = self.encoder(src, memory_mask, need_weights=need_weights)
        return memory, memory_mask

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor | None,
        memory_mask: Tensor,
        cache: DecoderCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Next-token logits for each target position.

        Without a cache, `tgt` (B, T) is the whole (right-padded) prefix. With a cache, `tgt`
        holds only the new steps (usually T = 1) and the cache supplies the past; `memory` is
        needed on the first call only (cross-attention K/V are cached after it).

        Shape: tgt (B, T), memory (B, S, D), memory_mask (B, 1, 1, S)
        -> logits (B, T, V), or (B, 1, V) when last_only (decoding needs only the last).
        """
        self_mask = self._self_mask(tgt, cache)
        hidden, _, _ = self.decoder(tgt, memory, self_mask, memory_mask, cache)
        if last_only:
            hidden = hidden[:, -1:]  # (B, 1, D): skip the vocabulary matmul for earlier steps
        return self.generator(hidden)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced training pass.

        Shape: src (B, S) long, tgt (B, T) long (decoder input: <s> y_1 … y_{T-1})
        -> logits (B, T, V) predicting y_1 … y_T.
        """
        memory, memory_mask = self.encode(src)
        return self.decode(tgt, memory, memory_mask)

    # --- helpers ------------------------------------------------------------------------------

    def _self_mask(self, tgt: Tensor, cache: DecoderCache | None) -> Tensor | None:
        """Shape: tgt (B, T) -> (B, 1, T, T), (B, 1, 1, T), (T, past + T) or None."""
        T = tgt.shape[1]
        if cache is None and self.config.attention_window is not None:
            # Windowed full prefix: the window path is causal itself and takes key padding only.
            return padding_mask(tgt, self.config.pad_id)  # (B, 1, 1, T)
        if cache is None:  # full prefix: causal, and padded keys hidden (§3.2.3)
            return combine(
                padding_mask(tgt, self.config.pad_id), causal_mask(T, T, device=tgt.device)
            )
        # With a window, the layers add the band to what is returned here (MultiHeadAttention).
        if T == 1:  # one new step may see every cached step: no mask (keeps SDPA's fast path)
            return None
        past = cache.length
        return causal_mask(T, past + T, device=tgt.device)  # bottom-right aligned

    def new_cache(self, capacity: int = 64) -> DecoderCache:
        """An empty cache for incremental decoding with this model."""
        return DecoderCache(self.config.n_decoder_layers, capacity)

    def attention_maps(self, src: Tensor, tgt: Tensor) -> AttentionMaps:
        """Teacher-forced pass that also returns every attention weight (math path)."""
        memory_mask = padding_mask(src, self.config.pad_id)
        memory, enc_w = self.encoder(src, memory_mask, need_weights=True)
        self_mask = self._self_mask(tgt, None)
        hidden, self_w, cross_w = self.decoder(
            tgt, memory, self_mask, memory_mask, need_weights=True
        )
        return AttentionMaps(self.generator(hidden), enc_w, self_w, cross_w)

    def num_parameters(self) -> int:
        """Unique parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())


__all__ = ["AttentionMaps", "Decoder", "Encoder", "EncoderDecoder"]
