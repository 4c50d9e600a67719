"""The generation loop of a language model: prompts in, continuations out, token by token.

    out = generate_tokens(model, [[2], [2, 40, 41]], max_new_tokens=100,
                          sampling=SamplingConfig(temperature=0.8, top_k=40), eos_id=2, seed=1)

The loop owns the model calls and the KV cache; the choice of each token is the `Sampler`'s
(`aiayn.decode.sampling`: repetition penalty → temperature → top-k → top-p, greedy at
temperature 0). The model is driven through the decoding protocol (`aiayn.decode.protocol`):
`start` lays out the prompts padded on the LEFT, the first `step` feeds the prompts themselves
(one pass fills the cache), each later step one new token per row.

Rows are independent of their batch:
- each row draws from its own `torch.Generator`, seeded with `seed + i` for row i (or with
  `seed[i]` when a list is given), so a prompt samples the same tokens alone as in any batch
  (row i of a batch = that prompt alone with seed `seed + i`);
- a row that ends (at `eos_id`, or after `max_new_tokens`) leaves the batch at once
  (`state.reorder`), its generator with it, so finished rows cost nothing;
- padding is hidden from attention (the model's business) and from the repetition penalty.

The sliding window. The model was trained on at most `config.max_len` positions (learned
positions stop there). A row whose sequence would outgrow that keeps only its last
`max_len // 2` tokens as context: the cache is rebuilt from those (one prompt pass) and then
grows again, one token a step, until it is full once more. Halving (rather than dropping one
token per step, as nanoGPT does by recomputing the last `max_len` tokens at every step without a
cache) rebuilds the cache only every `max_len // 2` tokens, at the price of a context between
`max_len // 2` and `max_len` tokens long instead of always `max_len`. A prompt longer than
`max_len` starts from its last `max_len` tokens. The window of a row depends only on its own
length, so the invariance to batching holds past the context too. When any row's window is cut
the whole batch is re-started (the other rows' windows are unchanged, only recomputed). Up to
the context length generation is exactly the cached decoding of the full sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from aiayn.decode.protocol import Decodable, DecodingState
from aiayn.decode.sampling import Sampler, SamplingConfig

log = logging.getLogger(__name__)

OnToken = Callable[[int, int], object]  # (row, token id): called as each token is chosen


def window_keep(max_len: int) -> int:
    """Tokens of context a row keeps when its sequence outgrows `max_len`: half of it."""
    return max(1, max_len // 2)


def row_seeds(seed: int | Sequence[int] | None, n: int) -> list[int]:
    """One seed per row: `seed + i` for row i, or the given list. None draws a base seed from
    torch's global RNG (so `torch.manual_seed` reproduces it too)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} prompts")
    return seeds


@torch.inference_mode()
def generate_tokens(
    model: Decodable,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    sampling: SamplingConfig | None = None,
    eos_id: int | None = None,
    seed: int | Sequence[int] | None = None,
    on_token: OnToken | None = None,
    banned: Sequence[int] = (),
) -> list[list[int]]:
    """Continue each prompt by up to `max_new_tokens` tokens, batched, with the KV cache.

    Args:
        model: a decoder-only model of the decoding protocol (`config.pad_id`,
            `config.max_len`); put it in eval mode first.
        prompts: token ids, each at least one (a language model starts from its start token).
        max_new_tokens: the most tokens generated per prompt.
        sampling: how each token is chosen (default: sampling from the model's distribution;
            `SamplingConfig(temperature=0)` is greedy).
        eos_id: a row ends after generating it (it is returned); None: only the limit ends rows.
        seed: row i draws with a generator seeded `seed + i` (or `seed[i]`); see module doc.
        on_token: called as `on_token(row, token)` for each new token as soon as it is chosen
            (row = index into `prompts`), for streaming.
        banned: ids never generated; padding (`config.pad_id`) is never generated anyway.

    Returns:
        For each prompt, the tokens generated (without the prompt), `eos_id` included when it
        ended the row.

    The generated sequences past `config.max_len` tokens see a sliding window (module doc).
    """
    pad_id = model.config.pad_id
    max_len = model.config.max_len
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. the start token)")
    if any(t == pad_id for p in prompts for t in p):
        raise ValueError(f"a prompt holds the padding id {pad_id}, which the model cannot see")
    sampler = Sampler(sampling, banned=(pad_id, *banned))
    penalised = sampler.config.repetition_penalty != 1.0
    device = next(model.parameters()).device
    n = len(prompts)
    seqs = [list(map(int, p)) for p in prompts]  # prompt + generated, per row
    outs: list[list[int]] = [[] for _ in range(n)]
    if n == 0 or max_new_tokens == 0:
        return outs
    gens = None
    if not sampler.config.greedy:  # greedy draws nothing
        gens = [torch.Generator(device=device).manual_seed(s) for s in row_seeds(seed, n)]
    # first[r]: where row r's context starts in seqs[r] (a long prompt keeps its last max_len)
    first = [max(0, len(s) - max_len) for s in seqs]
    active = list(range(n))  # original rows still generating, in batch order
    capacity = min(max_len, max(map(len, seqs)) + max_new_tokens)
    state, logits = _restart(model, [seqs[r][first[r] :] for r in active], pad_id, device, capacity)
    # The rows' whole sequences (prompt + generated), left-padded, for the repetition penalty.
    history = _left_pad(seqs, pad_id, device) if penalised else None  # (B, L)
    for t in range(max_new_tokens):
        mask = None if history is None else history != pad_id  # (B, L): padding is no history
        row_gens = None if gens is None else [gens[r] for r in active]
        tokens = sampler(logits, history, mask, generator=row_gens)  # (B,)
        if history is not None:
            history = torch.cat([history, tokens[:, None]], dim=1)  # (B, L + 1)
        ids = tokens.tolist()
        for r, tok in zip(active, ids, strict=True):
            seqs[r].append(tok)
            outs[r].append(tok)
            if on_token is not None:
                on_token(r, tok)
        if t == max_new_tokens - 1:
            break
        # Rows that ended leave the batch: their cache rows, tokens and generators with them.
        keep = [i for i, tok in enumerate(ids) if tok != eos_id]
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            state.reorder(index)
            tokens = tokens.index_select(0, index)
            if history is not None:
                history = history.index_select(0, index)
            active = [active[i] for i in keep]
        # A row whose window would exceed max_len keeps its last max_len // 2 tokens.
        cut = [r for r in active if len(seqs[r]) - first[r] > max_len]
        if cut:
            for r in cut:
                first[r] = len(seqs[r]) - window_keep(max_len)
            log.debug("step %d: %d row(s) outgrew the context of %d; window cut", t, len(cut),
                      max_len)  # fmt: skip
            state, logits = _restart(
                model, [seqs[r][first[r] :] for r in active], pad_id, device, capacity=max_len
            )
        else:
            logits = model.step(state, tokens[:, None])  # (B, V)
    return outs


def _restart(
    model: Decodable, windows: list[list[int]], pad_id: int, device: torch.device, capacity: int
) -> tuple[DecodingState, Tensor]:
    """A fresh state holding `windows` (fed as one prompt pass) and the next-token logits.

    Shape: -> logits (B, V)."""
    prompts = _left_pad(windows, pad_id, device)  # (B, P)
    state = model.start(prompts, capacity=max(capacity, prompts.shape[1]) + 1)
    return state, model.step(state, prompts)


def _left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> Tensor:
    """Sequences right-aligned in one tensor, padding on the left. Shape: -> (B, max len)."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
    return out.to(device)


__all__ = ["generate_tokens", "row_seeds", "window_keep"]
