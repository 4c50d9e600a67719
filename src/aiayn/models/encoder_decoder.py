"""The encoder-decoder Transformer of the paper (Figure 1), assembled from `aiayn.nn` blocks."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from aiayn.config import ModelConfig
from aiayn.nn.embeddings import OutputProjection, TokenEmbedding
from aiayn.nn.kv_cache import DecoderCache
from aiayn.nn.masks import causal_mask, combine, padding_mask
from aiayn.nn.positional import build_positional
from aiayn.nn.stack import Stack


class Encoder(Stack):
    """Embed + positions → dropout → N × Block (→ final LayerNorm when pre-LN) (Fig. 1, left)."""

    def __init__(self, cfg: ModelConfig, embed: TokenEmbedding) -> None:
        positional = build_positional(
            cfg.positional, cfg.d_model, cfg.n_heads, cfg.max_len, cfg.layer.key_dim
        )
        super().__init__(cfg.layer, cfg.n_encoder_layers, embed, positional, name="encoder")


class Decoder(Stack):
    """The same stack with causal, cross-attending blocks (Fig. 1, right)."""

    def __init__(self, cfg: ModelConfig, embed: TokenEmbedding) -> None:
        positional = build_positional(
            cfg.positional, cfg.d_model, cfg.n_heads, cfg.max_len, cfg.layer.key_dim
        )
        super().__init__(
            cfg.layer, cfg.n_decoder_layers, embed, positional, causal=True,
            cross_attention=True, name="decoder",
        )  # fmt: skip


@dataclass
class EncoderDecoderState:
    """Decoding state: the encoder's output and the decoder's KV cache (rows = sentences ×
    beams). `memory` is dropped after the first step: its K/V then live in the cache."""

    memory: Tensor | None  # (B, S, D)
    memory_mask: Tensor  # (B, 1, 1, S) bool
    cache: DecoderCache

    def reorder(self, index: Tensor, same_inputs: bool = False) -> None:
        """Keep rows `index` (B',). `same_inputs` (beams swapping within a sentence): the
        source's mask and cross-attention K/V are the same for those rows, so they stay."""
        if not same_inputs:
            self.memory_mask = self.memory_mask.index_select(0, index)  # (B', 1, 1, S)
        if self.memory is not None:  # before the first step: the cache is still empty
            self.memory = self.memory.index_select(0, index)  # (B', S, D)
        else:
            self.cache.reorder(index, cross=not same_inputs)


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
        real = src != self.config.pad_id  # (B, S), for a BatchNorm's statistics
        memory, _, _ = self.encoder(src, memory_mask, need_weights=need_weights, real=real)
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
        real = tgt != self.config.pad_id if cache is None else None  # (B, T): a BatchNorm's
        hidden, _, _ = self.decoder(tgt, self_mask, memory, memory_mask, cache, real=real)
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
        if cache is None and self.config.layer.attention_window is not None:
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

    # --- the decoding protocol (aiayn.decode.protocol) ----------------------------------------

    def start(self, inputs: Tensor, capacity: int = 64) -> EncoderDecoderState:
        """Encode the source once. Shape: inputs (B, S) long source ids."""
        memory, memory_mask = self.encode(inputs)
        return EncoderDecoderState(memory, memory_mask, self.new_cache(capacity))

    def step(self, state: EncoderDecoderState, tokens: Tensor) -> Tensor:
        """Shape: tokens (B, T) new decoder inputs (<s> first) -> next-token logits (B, V)."""
        logits = self.decode(tokens, state.memory, state.memory_mask, state.cache, last_only=True)
        state.memory = None  # cross-attention K/V are cached after the first step
        return logits[:, -1]  # (B, V)

    def attention_maps(self, src: Tensor, tgt: Tensor) -> AttentionMaps:
        """Teacher-forced pass that also returns every attention weight (math path)."""
        memory_mask = padding_mask(src, self.config.pad_id)
        memory, enc_w, _ = self.encoder(src, memory_mask, need_weights=True)
        self_mask = self._self_mask(tgt, None)
        hidden, self_w, cross_w = self.decoder(
            tgt, self_mask, memory, memory_mask, need_weights=True
        )
        return AttentionMaps(self.generator(hidden), enc_w, self_w, cross_w)

    def num_parameters(self) -> int:
        """Unique parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())


__all__ = ["AttentionMaps", "Decoder", "Encoder", "EncoderDecoder", "EncoderDecoderState"]
