"""The beam-search generation loop, and `generate`: pick a strategy and return token ids.

The loop owns the model calls and the KV cache; the strategy (`BeamSearch`) owns the beams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aiayn.decode.beam import BeamSearch, Hypothesis
from aiayn.decode.greedy import greedy_decode, never_generated
from aiayn.decode.length_penalty import PAPER_ALPHA
from aiayn.decode.limits import output_limits
from aiayn.models.encoder_decoder import EncoderDecoder


@torch.inference_mode()
def beam_search(
    model: EncoderDecoder,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    alpha: float = PAPER_ALPHA,
    max_len: int | None = None,
    extra_len: int = 50,
    n_best: int = 1,
    min_len: int = 0,
) -> list[list[Hypothesis]]:
    """Translate a batch with beam search (§6.1: beam 4, alpha 0.6, input length + 50).

    The B sentences × K beams run as one batch of B·K rows (row b*K + k = beam k of sentence
    b). The source is encoded once and its memory repeated per beam; cross-attention K/V are
    computed on the first step and only copied again when finished sentences leave the batch.
    Padding and <s> are never generated, nor </s> before `min_len` other tokens (min_len =
    max_len gives fixed-length outputs, as benchmarks need). A sentence outputs at most its
    own source length + `extra_len` tokens (counting </s>), capped at `max_len` (see
    `output_limits`; note that greedy_decode's `max_len` replaces the limit instead). See
    `aiayn.decode.beam` for the search and its stopping rule, and `aiayn.decode.length_penalty`
    for the score.

    `model` is anything with EncoderDecoder's `encode`, `decode`, `new_cache` and
    `config.pad_id`. Shape: src (B, S) long -> B lists of up to `n_best` hypotheses, best first.
    """
    K = beam_size
    if not 1 <= n_best <= K:
        raise ValueError(f"n_best must be in [1, beam_size = {K}], got {n_best}")
    pad_id = model.config.pad_id
    limits = output_limits(src, pad_id, max_len, extra_len)  # (B,)
    banned = never_generated(pad_id, bos_id, eos_id)
    search = BeamSearch(limits, K, eos_id, alpha, banned=banned, min_len=min_len)

    memory, memory_mask = model.encode(src)  # (B, S, D), (B, 1, 1, S)
    memory = memory.repeat_interleave(K, dim=0)  # (B*K, S, D): one copy per beam
    memory_mask = memory_mask.repeat_interleave(K, dim=0)  # (B*K, 1, 1, S)
    cache = model.new_cache(capacity=search.max_len)
    tokens = torch.full((src.shape[0] * K, 1), bos_id, dtype=torch.long, device=src.device)
    for _ in range(search.max_len):  # the search ends every sentence by its limit
        logits = model.decode(tokens, memory, memory_mask, cache, last_only=True)  # (A*K, 1, V)
        memory = None  # its cross-attention K/V are in the cache now
        # fp32: summed log-probs of long hypotheses lose precision in half types.
        lprobs = F.log_softmax(logits[:, -1].float(), dim=-1)  # (A*K, V)
        step = search.step(lprobs)
        if search.done:
            break
        if step.compacted:  # rows of finished sentences leave: cross K/V must follow too
            memory_mask = memory_mask.index_select(0, step.index)  # (A'*K, 1, 1, S)
            cache.reorder(step.index, cross=True)
        elif K > 1:  # beams only swap within a sentence, whose cross K/V are all the same
            cache.reorder(step.index, cross=False)
        # K == 1 without compaction: every row extends itself, nothing to move.
        tokens = step.tokens  # (A'*K, 1)
    return search.hypotheses(n_best)


def generate(
    model: EncoderDecoder,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    alpha: float = PAPER_ALPHA,
    max_len: int | None = None,
    extra_len: int = 50,
    min_len: int = 0,
) -> list[list[int]]:
    """The best output of each sentence as token ids (no <s>, </s> or padding).

    beam_size 1 is greedy decoding (alpha does not apply), equal to `beam_search` with K = 1
    and alpha = 0 but faster for small batches; larger sizes run `beam_search`. Length limits
    as in `beam_search`. Shape: src (B, S) long -> B lists of ids.
    """
    if beam_size == 1:
        return _greedy_ids(model, src, bos_id, eos_id, max_len, extra_len, min_len)
    hyps = beam_search(
        model, src, bos_id, eos_id, beam_size, alpha, max_len, extra_len, min_len=min_len
    )
    return [h[0].tokens for h in hyps]


def _greedy_ids(
    model: EncoderDecoder,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int | None,
    extra_len: int,
    min_len: int,
) -> list[list[int]]:
    """`greedy_decode` as id lists without </s> or padding (= `beam_search` with K = 1 and
    alpha = 0, but a few percent faster: no beam bookkeeping)."""
    out = greedy_decode(model, src, bos_id, eos_id, max_len, extra_len, min_len)
    pad_id = model.config.pad_id
    return [[t for t in row if t not in (eos_id, pad_id)] for row in out.tolist()]
