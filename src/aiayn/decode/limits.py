"""How long an output may grow (§6.1: "maximum output length to input length + 50")."""

from __future__ import annotations

from torch import Tensor


def output_limits(src: Tensor, pad_id: int, max_len: int | None, extra_len: int) -> Tensor:
    """Most output tokens (counting </s>) per sentence: the source's own length (padding
    excluded) + `extra_len` (§6.1: "input length + 50"), capped at `max_len` when given.

    Counting each sentence's real length, and capping rather than replacing, keeps a
    sentence's output independent of the batch it is padded into.
    Shape: src (B, S) long -> (B,) long.
    """
    limits = (src != pad_id).sum(dim=1) + extra_len  # (B,)
    if max_len is not None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        limits = limits.clamp(max=max_len)
    return limits.clamp(min=1)  # (B,)
