"""Greedy decoding: at each step take the most probable next token (batched, KV-cached)."""

from __future__ import annotations

import torch
from torch import Tensor

from aiayn.decode.limits import output_limits
from aiayn.models.encoder_decoder import EncoderDecoder


def never_generated(pad_id: int, bos_id: int, eos_id: int) -> tuple[int, ...]:
    """Padding and <s> are never outputs (unless <s> doubles as </s>, as in fairseq)."""
    return (pad_id,) if bos_id == eos_id else (pad_id, bos_id)


@torch.inference_mode()
def greedy_decode(
    model: EncoderDecoder,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int | None = None,
    extra_len: int = 50,
    min_len: int = 0,
) -> Tensor:
    """Translate a batch greedily.

    The source is encoded once; each step feeds only the newest token through the decoder
    (its past lives in the KV cache) and computes logits for that position only. A sentence
    ends at its first `eos_id` or at its length limit: its own source length + `extra_len`
    (§6.1: "input length + 50"), capped at `max_len` — so a sentence's output does not depend
    on the batch it is padded into. Padding and <s> are never generated, nor </s> before
    `min_len` other tokens (min_len = max_len gives fixed-length outputs).

    Shape: src (B, S) long -> (B, L) long: the tokens after <s>, up to and including </s>
    (absent when cut at the limit), padded with the config's pad_id after it.
    """
    pad_id = model.config.pad_id
    B = src.shape[0]
    limits = output_limits(src, pad_id, max_len, extra_len)  # (B,)
    banned = torch.tensor(never_generated(pad_id, bos_id, eos_id), device=src.device)
    banned_early = torch.cat([banned, banned.new_tensor([eos_id])])  # while t < min_len
    memory, memory_mask = model.encode(src)
    steps = int(limits.max())
    cache = model.new_cache(capacity=steps + 1)
    token = torch.full((B, 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    out = []
    for t in range(steps):
        logits = model.decode(token, memory, memory_mask, cache, last_only=True)  # (B, 1, V)
        memory = None  # cross-attention K/V are cached after the first step
        logits = logits.index_fill(-1, banned_early if t < min_len else banned, float("-inf"))
        token = logits.argmax(dim=-1).masked_fill(finished[:, None], pad_id)  # (B, 1)
        out.append(token)
        finished |= (token[:, 0] == eos_id) | (limits <= t + 1)
        if bool(finished.all()):
            break
    return torch.cat(out, dim=1)
