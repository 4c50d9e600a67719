"""The beam-search generation loop, and `generate`: pick a strategy and return token ids.

The loop owns the model calls and the KV cache; the strategy (`BeamSearch`) owns the beams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aiayn.decode.beam import BeamRecorder, BeamSearch, Hypothesis
from aiayn.decode.greedy import CACHE_START, greedy_decode, never_generated
from aiayn.decode.length_penalty import PAPER_ALPHA
from aiayn.decode.limits import output_limits
from aiayn.decode.protocol import Decodable


@torch.inference_mode()
def beam_search_over(
    model: Decodable,
    inputs: Tensor,
    first: Tensor,
    eos_id: int,
    limits: Tensor,
    beam_size: int = 4,
    alpha: float = PAPER_ALPHA,
    banned: tuple[int, ...] = (),
    n_best: int = 1,
    min_len: int = 0,
    recorder: BeamRecorder | None = None,
    stopping: str = "exact",
) -> list[list[Hypothesis]]:
    """Beam search over any model of the decoding protocol (`aiayn.decode.protocol`).

    The B inputs × K beams run as one batch of B·K rows (row b*K + k = beam k of input b): the
    state is started once per input and its rows repeated per beam; `first` (B, T0) is fed on
    the first step (<s> for translation, the prompt for a language model). Row b outputs at
    most `limits[b]` tokens (counting </s>). See `aiayn.decode.beam` for the search and its
    stopping rules (`stopping`: "exact" or "k_finished"). `recorder` watches every step
    (`aiayn.decode.beam_tree.BeamTree`).
    Shape: inputs (B, S), first (B, T0), limits (B,) long
    -> B lists of up to `n_best` hypotheses, best first.
    """
    K = beam_size
    if not 1 <= n_best <= K:
        raise ValueError(f"n_best must be in [1, beam_size = {K}], got {n_best}")
    search = BeamSearch(
        limits, K, eos_id, alpha, banned=banned, min_len=min_len, recorder=recorder,
        stopping=stopping,
    )  # fmt: skip
    state = model.start(inputs, capacity=first.shape[1] + min(search.max_len, CACHE_START))
    # The first step runs once per input: its K beams would all be the same <s> (only beam 0
    # is live), so the state is repeated per beam only after it, cross-attention K/V included
    # (computed once per input, then copied, instead of computed K times).
    tokens = first  # (B, T0), then (A*K, 1)
    expanded = K == 1
    for _ in range(search.max_len):  # the search ends every sentence by its limit
        logits = model.step(state, tokens)  # (A*K, V); (B, V) on the first step
        # fp32: summed log-probs of long hypotheses lose precision in half types.
        lprobs = F.log_softmax(logits.float(), dim=-1)  # (A*K, V)
        if not expanded:
            lprobs = lprobs.repeat_interleave(K, dim=0)  # (B*K, V): beam k of input b
        step = search.step(lprobs)
        if search.done:
            break
        if not expanded:  # every new row comes from row index // K of the unrepeated state
            state.reorder(step.index.div(K, rounding_mode="floor"))
            expanded = True
        elif step.compacted:  # rows of finished inputs leave: everything must follow
            state.reorder(step.index)
        elif K > 1:  # beams only swap within an input, whose input-only state is the same
            state.reorder(step.index, same_inputs=True)
        # K == 1 without compaction: every row extends itself, nothing to move.
        tokens = step.tokens  # (A'*K, 1)
    return search.hypotheses(n_best)


def beam_search(
    model: Decodable,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    alpha: float = PAPER_ALPHA,
    max_len: int | None = None,
    extra_len: int = 50,
    n_best: int = 1,
    min_len: int = 0,
    recorder: BeamRecorder | None = None,
    stopping: str = "exact",
) -> list[list[Hypothesis]]:
    """Translate a batch with beam search (§6.1: beam 4, alpha 0.6, input length + 50).

    Padding and <s> are never generated, nor </s> before `min_len` other tokens (min_len =
    max_len gives fixed-length outputs, as benchmarks need). A sentence outputs at most its
    own source length + `extra_len` tokens (counting </s>), capped at `max_len` (see
    `output_limits`). See `aiayn.decode.length_penalty` for the score, and
    `aiayn.decode.beam` for `stopping` ("exact": the paper's; "k_finished": CTranslate2's).

    Shape: src (B, S) long -> B lists of up to `n_best` hypotheses, best first.
    """
    pad_id = model.config.pad_id
    limits = output_limits(src, pad_id, max_len, extra_len)  # (B,)
    first = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    banned = never_generated(pad_id, bos_id, eos_id)
    return beam_search_over(
        model, src, first, eos_id, limits, beam_size, alpha, banned, n_best, min_len, recorder,
        stopping,
    )  # fmt: skip


def generate(
    model: Decodable,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    alpha: float = PAPER_ALPHA,
    max_len: int | None = None,
    extra_len: int = 50,
    min_len: int = 0,
    stopping: str = "exact",
) -> list[list[int]]:
    """The best output of each sentence as token ids (no <s>, </s> or padding).

    beam_size 1 is greedy decoding (alpha and stopping do not apply), equal to `beam_search`
    with K = 1 and alpha = 0 but faster for small batches; larger sizes run `beam_search`.
    Length limits as in `beam_search`. Shape: src (B, S) long -> B lists of ids.
    """
    if beam_size == 1:
        return _greedy_ids(model, src, bos_id, eos_id, max_len, extra_len, min_len)
    hyps = beam_search(
        model, src, bos_id, eos_id, beam_size, alpha, max_len, extra_len, min_len=min_len,
        stopping=stopping,
    )  # fmt: skip
    return [h[0].tokens for h in hyps]


def _greedy_ids(
    model: Decodable,
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
