"""Transformer blocks with no task knowledge: masks, attention, positions, the block, the stack."""

from aiayn.nn.attention import MultiHeadAttention, scaled_dot_product_attention
from aiayn.nn.block import Block
from aiayn.nn.dropout import Dropout, dropout
from aiayn.nn.embeddings import OutputProjection, TokenEmbedding
from aiayn.nn.feed_forward import PositionwiseFeedForward
from aiayn.nn.kv_cache import DecoderCache, KVCache, StaticKV
from aiayn.nn.masks import causal_mask, combine, decoder_self_mask, lengths_mask, padding_mask
from aiayn.nn.positional import (
    LearnedPositionalEncoding,
    PositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
    build_positional,
    sinusoid_table,
)
from aiayn.nn.residual import Residual
from aiayn.nn.sliding_window import SlidingWindowAttention
from aiayn.nn.stack import Stack
from aiayn.nn.trace import record, shape_trace

__all__ = [
    "Block",
    "DecoderCache",
    "Dropout",
    "KVCache",
    "LearnedPositionalEncoding",
    "MultiHeadAttention",
    "OutputProjection",
    "PositionalEncoding",
    "PositionwiseFeedForward",
    "Residual",
    "RotaryPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "SlidingWindowAttention",
    "Stack",
    "StaticKV",
    "TokenEmbedding",
    "build_positional",
    "causal_mask",
    "combine",
    "decoder_self_mask",
    "dropout",
    "lengths_mask",
    "padding_mask",
    "record",
    "scaled_dot_product_attention",
    "shape_trace",
    "sinusoid_table",
]
