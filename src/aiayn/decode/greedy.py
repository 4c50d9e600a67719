"""Greedy decoding: at each step take the most probable next token (batched, KV-cached)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from aiayn.decode.limits import output_limits
from aiayn.decode.protocol import Decodable


def never_generated(pad_id: int, bos_id: int, eos_id: int) -> tuple[int, ...]:
    """Padding and <s> are never outputs (unless <s> doubles as </s>, as in fairseq)."""
    return (pad_id,) if bos_id == eos_id else (pad_id, bos_id)


@torch.inference_mode()
def greedy_search(
    model: Decodable,
    inputs: Tensor,
    first: Tensor,
    eos_id: int | None,
    limits: Tensor,
    banned: Sequence[int] = (),
    min_len: int = 0,
) -> Tensor:
    """Greedy decoding of any model of the decoding protocol (`aiayn.decode.protocol`).

    `model.start(inputs)` once, then each step feeds only the newest token (its past lives in
    the state's KV cache): `first` (B, T0) on the first step (<s> for translation, the prompt
    for a language model), each row's previous output after. Row b ends at its first `eos_id`
    (None: never) or after `limits[b]` tokens. `banned` ids are never generated, nor `eos_id`
    before `min_len` other tokens.

    Finished rows leave the batch (`state.reorder`), so the model only decodes live rows; they
    leave in groups (`_should_compact`), since each reorder copies the cache. A row's tokens
    never depend on which other rows are still in the batch.

    Shape: inputs (B, S) long, first (B, T0) long, limits (B,) long -> (B, L) long: the
    generated tokens, up to and including </s> (absent when cut at the limit), padded with the
    config's pad_id after it; L = the longest row.
    """
    pad_id = model.config.pad_id
    B = inputs.shape[0]
    device = inputs.device
    banned_t = torch.tensor(sorted(set(banned)), dtype=torch.long, device=device)
    ends = [] if eos_id is None else [eos_id]
    banned_early = torch.tensor(sorted({*banned, *ends}), dtype=torch.long, device=device)
    steps = int(limits.max())
    state = model.start(inputs, capacity=first.shape[1] + min(steps, CACHE_START))
    out = torch.full((B, steps), pad_id, dtype=torch.long, device=device)  # (B, steps)
    token = first  # (A, T0): the live rows' inputs
    rows = torch.arange(B, device=device)  # (A,): original row of each live row
    row_limits = limits.clone()  # (A,)
    finished = torch.zeros(B, dtype=torch.bool, device=device)  # (A,): ended, not yet dropped
    length = 0
    for t in range(steps):
        logits = model.step(state, token)  # (A, V)
        mask = banned_early if t < min_len else banned_t
        if mask.numel():
            logits.index_fill_(-1, mask, float("-inf"))  # in place: no copy of (A, V)
        token = logits.argmax(dim=-1, keepdim=True)  # (A, 1)
        live = ~finished  # (A,)
        out[rows[live], t] = token[live, 0]
        length = t + 1
        if eos_id is not None:
            finished |= token[:, 0] == eos_id
        finished |= row_limits <= t + 1
        n_done = int(finished.sum())
        if n_done == finished.shape[0]:
            break
        if _should_compact(n_done, finished.shape[0]):
            keep = (~finished).nonzero()[:, 0]  # (A',)
            state.reorder(keep)
            token, rows, row_limits = token[keep], rows[keep], row_limits[keep]
            finished = finished[keep]
    return out[:, :length]


#: Steps the KV cache holds at first; it doubles when full. Reorders (beams, rows leaving the
#: batch) copy the whole buffer, so a buffer sized for the longest possible output (source +
#: 50) would copy several times the filled steps on every reorder.
CACHE_START = 16


def _should_compact(n_done: int, n_rows: int) -> bool:
    """Drop finished rows once they are an eighth of the batch (or the batch is small): a
    reorder copies every live row's cache, so dropping one row at a time costs more than
    decoding a few dead rows for a few steps."""
    return n_done > 0 and (8 * n_done >= n_rows or n_rows - n_done <= 4)


def greedy_decode(
    model: Decodable,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int | None = None,
    extra_len: int = 50,
    min_len: int = 0,
) -> Tensor:
    """Translate a batch greedily.

    A sentence ends at its first `eos_id` or at its length limit: its own source length +
    `extra_len` (§6.1: "input length + 50"), capped at `max_len` — so a sentence's output does
    not depend on the batch it is padded into. Padding and <s> are never generated, nor </s>
    before `min_len` other tokens (min_len = max_len gives fixed-length outputs).

    Shape: src (B, S) long -> (B, L) long: the tokens after <s>, up to and including </s>
    (absent when cut at the limit), padded with the config's pad_id after it.
    """
    pad_id = model.config.pad_id
    limits = output_limits(src, pad_id, max_len, extra_len)  # (B,)
    first = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    banned = never_generated(pad_id, bos_id, eos_id)
    return greedy_search(model, src, first, eos_id, limits, banned, min_len)
