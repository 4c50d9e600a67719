"""Decoding strategies over models with a KV cache."""

from aiayn.decode.greedy import greedy_decode

__all__ = ["greedy_decode"]
