"""Greedy decoding: at each step take the most probable next token (batched, KV-cached)."""

from __future__ import annotations

import torch
from torch import Tensor

from aiayn.models.encoder_decoder import EncoderDecoder


@torch.inference_mode()
def greedy_decode(
    model: EncoderDecoder,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int | None = None,
    extra_len: int = 50,
) -> Tensor:
    """Translate a batch greedily.

    The source is encoded once; each step feeds only the newest token through the decoder
    (its past lives in the KV cache) and computes logits for that position only. A sentence
    is finished at its first `eos_id`; decoding stops when all are. The output length limit is
    `max_len`, or source length + `extra_len` (§6.1: "input length + 50").

    Shape: src (B, S) long -> (B, L) long: the tokens after <s>, up to and including </s>,
    padded with the config's pad_id after it.
    """
    pad_id = model.config.pad_id
    B = src.shape[0]
    limit = max_len if max_len is not None else src.shape[1] + extra_len
    memory, memory_mask = model.encode(src)
    cache = model.new_cache(capacity=limit + 1)
    token = torch.full((B, 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    out = []
    for _ in range(limit):
        logits = model.decode(token, memory, memory_mask, cache, last_only=True)  # (B, 1, V)
        token = logits.argmax(dim=-1)  # (B, 1)
        token = token.masked_fill(finished[:, None], pad_id)
        out.append(token)
        finished |= token[:, 0] == eos_id
        if bool(finished.all()):
            break
    return torch.cat(out, dim=1)
