"""Architectures assembled from `aiayn.nn` blocks, presets, and model directories."""

from aiayn.models import presets
from aiayn.models.encoder_decoder import AttentionMaps, Decoder, Encoder, EncoderDecoder
from aiayn.models.serialization import load_pretrained, save_pretrained

__all__ = [
    "AttentionMaps",
    "Decoder",
    "Encoder",
    "EncoderDecoder",
    "load_pretrained",
    "presets",
    "save_pretrained",
]
