"""Architectures assembled from `aiayn.nn` blocks, presets, and model directories."""

from aiayn.models import presets
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import AttentionMaps, Decoder, Encoder, EncoderDecoder
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.serialization import ARCHITECTURES, load_pretrained, save_pretrained
from aiayn.models.vision import VisionTransformer

__all__ = [
    "ARCHITECTURES",
    "AttentionMaps",
    "Decoder",
    "DecoderOnly",
    "Encoder",
    "EncoderDecoder",
    "EncoderOnly",
    "VisionTransformer",
    "load_pretrained",
    "presets",
    "save_pretrained",
]
