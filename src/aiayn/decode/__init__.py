"""Decoding strategies over models with a KV cache."""

from aiayn.decode.beam import BeamSearch, Hypothesis
from aiayn.decode.generation import generate_tokens
from aiayn.decode.greedy import greedy_decode
from aiayn.decode.length_penalty import length_penalty, normalized_score
from aiayn.decode.search import beam_search, generate

__all__ = [
    "BeamSearch",
    "Hypothesis",
    "beam_search",
    "generate",
    "generate_tokens",
    "greedy_decode",
    "length_penalty",
    "normalized_score",
]
