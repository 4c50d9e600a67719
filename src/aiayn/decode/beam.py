"""Beam search as a strategy: the bookkeeping of B sentences × K beams, with no model inside.

The generation loop (`aiayn.decode.search.beam_search`) runs the model and hands each step's
next-token log-probabilities to `BeamSearch.step`, which says which tokens to feed next and
which batch rows (beams) they extend, so the loop can reorder its KV cache to match.

Rows of the decoder batch are sentence-major: row a*K + k is beam k of the a-th sentence still
being decoded. A sentence whose search is over is dropped from the batch ("compaction"), so
the loop stops spending compute on it.

Per step (fairseq's scheme):
1. every live beam's log-prob plus every next token's, over K × V per sentence (each beam cut
   to its own top 2K tokens first: no other token can be among the sentence's top 2K);
2. the top 2K of those: at most K of them can end in </s> (one per beam), so at least K can
   continue and finished candidates never starve the beam;
3. </s> candidates among the first K are finished, scored by the GNMT length penalty;
4. the best K non-</s> candidates become the new beams.

Stopping (per sentence), `stopping="exact"` (the default): done when K hypotheses are finished
and no live beam can still beat the worst of them. A live beam's log-prob can only fall, and
with alpha >= 0 lp only grows with length, so its best possible final score is
log_prob / lp(longest length it may reach) — an exact bound (GNMT/tensor2tensor's criterion;
for alpha < 0 the shortest length is used). So stopping early never changes the result
compared with running to the length limit. A sentence that reaches its length limit
finishes its live beams as they are (no </s>).

K = 1 with alpha = 0 is greedy decoding exactly. With alpha > 0 it can differ: when greedy's
choice is </s>, the runner-up token stays live (step 4) and may later finish with a better
length-normalised score, which the exact stopping rule lets it do. (fairseq's default rule,
"stop at K finished", would stop there; it can miss better hypotheses for any K.)

`stopping="k_finished"` is that rule: done as soon as K hypotheses have finished (fairseq's,
CTranslate2's with patience 1, Hugging Face's `early_stopping=True`). It runs fewer steps: the
exact bound divides by lp(the length limit), so with alpha > 0 live beams must fall far below
the finished ones before a sentence is done. The price is that a live beam that would have
finished better is never seen; `docs/decoding_speed.md` measures how often that changes the
output on real sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from aiayn.decode.length_penalty import PAPER_ALPHA, length_penalty

NEG_INF = float("-inf")

#: Values of `BeamSearch(stopping=)`: the exact bound (default) or stop at K finished.
STOPPING = ("exact", "k_finished")


@dataclass(frozen=True)
class Hypothesis:
    """One output of beam search.

    `token_log_probs` has one entry per token counted in |Y| (see `length_penalty`): each of
    `tokens`, then </s> when `finished`. `log_prob` is their sum, `score` = log_prob / lp(|Y|).
    """

    tokens: list[int]  # output ids: no <s>, no </s>, no padding
    score: float  # log_prob / lp(length): what hypotheses are ranked by
    log_prob: float  # log P(tokens, </s> if finished | source)
    token_log_probs: list[float]
    finished: bool  # ended with </s>; False when cut at the length limit

    @property
    def length(self) -> int:
        """|Y| as used by the length penalty."""
        return len(self.token_log_probs)


@dataclass(frozen=True)
class BeamStep:
    """What the generation loop does after one `BeamSearch.step`."""

    tokens: Tensor  # (A'*K, 1) long: the next decoder input, one token per surviving row
    index: Tensor  # (A'*K,) long: the row of the previous batch each surviving row extends
    compacted: bool  # some sentences left the batch (rows of other sentences moved too)


@dataclass(frozen=True)
class StepCandidates:
    """One step's ranked candidates, for a `BeamRecorder` (built only when one is attached).

    Rows index the batch before the step; `keep` and `ends` are as in `BeamSearch.step`.
    """

    t: int  # tokens each live beam had before this step
    active: Tensor  # (A,) original sentence index of each active sentence
    rows: Tensor  # (A, 2K) parent row of each candidate, best first
    tokens: Tensor  # (A, 2K) the token it adds
    scores: Tensor  # (A, 2K) its log-prob so far (-inf: no such candidate)
    is_eos: Tensor  # (A, 2K) bool
    ends: Tensor  # (A, K) bool: finished with </s> (the first K candidates)
    keep: Tensor  # (A, K) indices into the 2K of the new live beams
    at_limit: Tensor  # (A,) bool: live beams finished at the length limit
    done: Tensor  # (A,) bool: the sentence's search is over after this step


class BeamRecorder(Protocol):
    """Watches a search step by step (`aiayn.decode.beam_tree.BeamTree` draws it as a tree)."""

    def record(self, search: BeamSearch, step: StepCandidates) -> None: ...


class BeamSearch:
    """Beam state for B sentences × K beams.

    limits: (B,) long, the most output tokens (counting </s>) each sentence may have.
    banned: token ids never generated (padding, <s>).
    min_len: </s> is banned until this many other tokens have been output (fairseq's
    --min-len; with min_len >= the limit every output runs to its limit).
    recorder: sees each step's candidates (the attention explorer's beam tree); None, the
    default, costs one attribute test per step.
    stopping: "exact" (no live beam can beat the K finished) or "k_finished" (K have finished);
    see the module docstring.
    """

    def __init__(
        self,
        limits: Tensor,
        beam_size: int,
        eos_id: int,
        alpha: float = PAPER_ALPHA,
        banned: tuple[int, ...] = (),
        min_len: int = 0,
        recorder: BeamRecorder | None = None,
        stopping: str = "exact",
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if stopping not in STOPPING:
            raise ValueError(f"stopping must be one of {', '.join(STOPPING)}, got {stopping!r}")
        if int(limits.min()) < 1:
            raise ValueError("every sentence needs a length limit >= 1")
        device = limits.device
        B, K = limits.shape[0], beam_size
        self.K, self.eos_id, self.alpha = K, eos_id, alpha
        self.limits = limits.long()  # (B,)
        self.max_len = int(self.limits.max())
        self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long, device=device)
        self.min_len = min_len
        self.recorder = recorder
        self.stopping = stopping
        self.banned_early = torch.tensor(  # while t < min_len, </s> is banned too
            sorted({*banned, eos_id}), dtype=torch.long, device=device
        )
        self.t = 0  # tokens generated so far by every live beam
        # Live beams of the A sentences still being searched.
        self.active = torch.arange(B, device=device)  # (A,) original sentence index
        self.scores = torch.full((B, K), NEG_INF, device=device)  # (A, K) fp32 log-probs
        # Only beam 0 starts live: K identical <s> beams would yield K copies of one hypothesis.
        self.scores[:, 0] = 0.0
        self.tokens = torch.zeros(B * K, self.max_len, dtype=torch.long, device=device)
        self.token_lps = torch.zeros(B * K, self.max_len, device=device)  # (A*K, L)
        # Finished hypotheses of every sentence, best first; -inf score marks an empty slot.
        self.fin_scores = torch.full((B, K), NEG_INF, device=device)  # (B, K)
        self.fin_tokens = torch.zeros(B, K, self.max_len, dtype=torch.long, device=device)
        self.fin_token_lps = torch.zeros(B, K, self.max_len, device=device)  # (B, K, L)
        self.fin_lengths = torch.zeros(B, K, dtype=torch.long, device=device)  # (B, K) |Y|
        self.fin_eos = torch.zeros(B, K, dtype=torch.bool, device=device)  # (B, K)

    @property
    def done(self) -> bool:
        """Whether every sentence's search is over."""
        return self.active.numel() == 0

    def step(self, lprobs: Tensor) -> BeamStep:
        """Advance every live beam by one token.

        Shape: lprobs (A*K, V) fp32 next-token log-probs, row a*K + k = beam k of active
        sentence a -> BeamStep over the A' <= A sentences still active afterwards.
        """
        A, K = self.scores.shape
        V = lprobs.shape[-1]
        t = self.t
        banned = self.banned_early if t < self.min_len else self.banned
        # 1-2. The top 2K (beam, token) continuations of each sentence, best first. Only a
        # beam's own top 2K tokens can be among them (2K better ones would come first), so
        # each beam is cut to those before the K beams are compared: topk over V per row
        # instead of adding the beam scores to all K × V log-probs and ranking those.
        # Banned ids are masked among each row's top 2K + |banned| (at least 2K of those are
        # allowed), not in the whole (A*K, V) tensor: no copy of it per step.
        C = min(2 * K + banned.numel(), V)
        row_lps, row_tokens = lprobs.topk(C, dim=1)  # (A*K, C)
        if banned.numel():
            row_lps = row_lps.masked_fill(torch.isin(row_tokens, banned), NEG_INF)
        cand = self.scores[:, :, None] + row_lps.view(A, K, C)  # (A, K, C)
        top_scores, top_flat = cand.view(A, K * C).topk(2 * K, dim=1)  # (A, 2K)
        top_tokens = row_tokens.view(A, K * C).gather(1, top_flat)  # (A, 2K)
        top_rows = top_flat // C + torch.arange(A, device=lprobs.device)[:, None] * K  # (A, 2K)
        top_lps = row_lps.view(A, K * C).gather(1, top_flat)  # (A, 2K): each token's own lp
        is_eos = top_tokens == self.eos_id  # (A, 2K)

        # 3. </s> among the first K: finish those hypotheses (length t + 1 counts the </s>).
        ends = is_eos[:, :K] & (top_scores[:, :K] > NEG_INF)  # (A, K)
        if bool(ends.any()):
            rows = top_rows[:, :K].reshape(-1)  # (A*K,)
            tokens = self.tokens.index_select(0, rows).view(A, K, -1)  # (A, K, L)
            lps = self.token_lps.index_select(0, rows).view(A, K, -1)  # (A, K, L)
            tokens[:, :, t] = self.eos_id
            lps[:, :, t] = top_lps[:, :K]
            self._finish(tokens, lps, top_scores[:, :K], ends, length=t + 1, eos=True)

        # 4. The best K candidates that do not end: rank </s> ones after all others.
        order = is_eos.long() * 2 * K + torch.arange(2 * K, device=lprobs.device)  # (A, 2K)
        keep = order.topk(K, dim=1, largest=False).indices  # (A, K), still best first
        self.scores = top_scores.gather(1, keep)  # (A, K)
        rows = top_rows.gather(1, keep).reshape(-1)  # (A*K,) parent row of each new beam
        self.tokens = self.tokens.index_select(0, rows)  # (A*K, L)
        self.token_lps = self.token_lps.index_select(0, rows)  # (A*K, L)
        self.tokens[:, t] = top_tokens.gather(1, keep).reshape(-1)
        self.token_lps[:, t] = top_lps.gather(1, keep).reshape(-1)
        self.t = t + 1

        limits = self.limits[self.active]  # (A,)
        at_limit = limits == self.t  # (A,)
        if bool(at_limit.any()):  # out of room: finish the live beams as they are
            live = at_limit[:, None] & (self.scores > NEG_INF)  # (A, K)
            tokens, lps = self.tokens.view(A, K, -1), self.token_lps.view(A, K, -1)
            self._finish(tokens, lps, self.scores, live, length=self.t, eos=False)
        if self.stopping == "k_finished":
            over = self.fin_scores[self.active, -1] > NEG_INF  # (A,): K have finished
        else:
            over = self._cannot_improve(limits)  # (A,)
        done = at_limit | over  # (A,)
        if self.recorder is not None:  # before compaction: rows and `active` still line up
            self.recorder.record(
                self,
                StepCandidates(t, self.active, top_rows, top_tokens, top_scores, is_eos, ends,
                               keep, at_limit, done),
            )  # fmt: skip
        compacted = bool(done.any())
        if compacted:
            stay = ~done  # (A,)
            self.active = self.active[stay]  # (A',)
            self.scores = self.scores[stay]  # (A', K)
            stay_rows = stay.repeat_interleave(K)  # (A*K,)
            rows = rows[stay_rows]  # (A'*K,)
            self.tokens = self.tokens[stay_rows]  # (A'*K, L)
            self.token_lps = self.token_lps[stay_rows]  # (A'*K, L)
        return BeamStep(self.tokens[:, t : t + 1], rows, compacted)

    def _cannot_improve(self, limits: Tensor) -> Tensor:
        """Sentences whose K finished hypotheses no live beam can beat (exact bound).

        Shape: limits (A,) -> (A,) bool.
        """
        # A live beam ends with length in [t + 1, limit] (t tokens now, </s> or more to come).
        # lp is monotonic in length, so its largest value is at one end of that range.
        lp_best = length_penalty(limits, self.alpha).clamp(
            min=length_penalty(self.t + 1, self.alpha)
        )  # (A,)
        best_live = self.scores.max(dim=1).values / lp_best  # (A,): log_prob <= 0 only falls
        worst_finished = self.fin_scores[self.active, -1]  # (A,): -inf until K are finished
        return best_live <= worst_finished

    def _finish(
        self, tokens: Tensor, lps: Tensor, log_probs: Tensor, mask: Tensor, length: int, eos: bool
    ) -> None:
        """Merge new finished hypotheses into each active sentence's best K.

        Shape: tokens (A, C, L) long, lps (A, C, L), log_probs (A, C), mask (A, C) bool: which
        of the C candidates really finish. All have |Y| = `length` (counting </s> when `eos`).
        """
        A, _, L = tokens.shape
        scores = (log_probs / length_penalty(length, self.alpha)).masked_fill(~mask, NEG_INF)
        idx = self.active
        pool_scores = torch.cat([self.fin_scores[idx], scores], dim=1)  # (A, K + C)
        best, pick = pool_scores.topk(self.K, dim=1)  # (A, K), best first
        pick_l = pick[:, :, None].expand(A, self.K, L)  # (A, K, L)
        self.fin_scores[idx] = best
        self.fin_tokens[idx] = torch.cat([self.fin_tokens[idx], tokens], 1).gather(1, pick_l)
        self.fin_token_lps[idx] = torch.cat([self.fin_token_lps[idx], lps], 1).gather(1, pick_l)
        new_lengths = torch.full_like(scores, length, dtype=torch.long)  # (A, C)
        self.fin_lengths[idx] = torch.cat([self.fin_lengths[idx], new_lengths], 1).gather(1, pick)
        new_eos = torch.full_like(mask, eos)  # (A, C)
        self.fin_eos[idx] = torch.cat([self.fin_eos[idx], new_eos], 1).gather(1, pick)

    def hypotheses(self, n_best: int = 1) -> list[list[Hypothesis]]:
        """The best `n_best` finished hypotheses of each sentence, best first."""
        if not 1 <= n_best <= self.K:
            raise ValueError(f"n_best must be in [1, beam_size = {self.K}], got {n_best}")
        # One transfer to Python lists, then plain bookkeeping per sentence.
        scores = self.fin_scores[:, :n_best].tolist()  # (B, n)
        tokens = self.fin_tokens[:, :n_best].tolist()  # (B, n, L)
        lps = self.fin_token_lps[:, :n_best].double().tolist()  # (B, n, L)
        lengths = self.fin_lengths[:, :n_best].tolist()  # (B, n)
        eos = self.fin_eos[:, :n_best].tolist()  # (B, n)
        out = []
        for b in range(len(scores)):
            hyps = []
            for j in range(n_best):
                if scores[b][j] == NEG_INF:  # fewer than n_best possible hypotheses
                    break
                n = lengths[b][j]
                n_tokens = n - 1 if eos[b][j] else n
                hyps.append(
                    Hypothesis(
                        tokens=tokens[b][j][:n_tokens],
                        score=scores[b][j],
                        log_prob=sum(lps[b][j][:n]),
                        token_log_probs=lps[b][j][:n],
                        finished=eos[b][j],
                    )
                )
            out.append(hyps)
        return out


__all__ = ["STOPPING", "BeamRecorder", "BeamSearch", "BeamStep", "Hypothesis", "StepCandidates"]
