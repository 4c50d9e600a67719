"""`BeamSearch` alone, driven by next-token tables instead of a model: it equals a plain
search that never stops early, for every sign of alpha, and it stops exactly when the
documented rule says nothing can change any more."""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from aiayn.decode import BeamSearch, length_penalty

PAD, BOS, EOS = 0, 1, 2
V = 6  # tokens 3, 4, 5 are words
BANNED = (PAD, BOS)
NEG_INF = float("-inf")


def table(seed: int, sentence: int, prefix: tuple[int, ...]) -> torch.Tensor:
    """Next-token log-probs (V,) fp32 of a random "model": a fixed function of the prefix."""
    g = torch.Generator().manual_seed(zlib.crc32(repr((seed, sentence, prefix)).encode()))
    logits = 1.5 * torch.randn(V, generator=g)
    logits[EOS] += 0.5 * len(prefix)  # sentences end sooner or later
    return logits.log_softmax(-1)


def run(seed, limits, K, alpha, device="cpu", stopping="exact"):
    """Drive BeamSearch to the end; -> (hypotheses(K), steps taken)."""
    search = BeamSearch(
        torch.tensor(limits, device=device), K, EOS, alpha, banned=BANNED, stopping=stopping
    )
    sentence = [b for b in range(len(limits)) for _ in range(K)]  # row -> sentence
    prefix: list[tuple[int, ...]] = [()] * len(sentence)
    steps = 0
    while not search.done:
        lprobs = torch.stack([table(seed, s, p) for s, p in zip(sentence, prefix, strict=True)])
        step = search.step(lprobs.to(device))
        steps += 1
        index, tokens = step.index.tolist(), step.tokens[:, 0].tolist()
        sentence = [sentence[i] for i in index]
        prefix = [(*prefix[i], t) for i, t in zip(index, tokens, strict=True)]
        assert search.done or len(prefix) == K * len(search.active)
    return search.hypotheses(K), steps


def best_final_score(log_prob: float, t: int, limit: int, alpha: float) -> float:
    """The best score a live beam with `t` tokens can still reach: it ends with some length
    in [t + 1, limit] and its log-prob can only fall."""
    return max(log_prob / length_penalty(n, alpha) for n in range(t + 1, limit + 1))


def reference(seed, sentence, limit, K, alpha, stopping="exact"):
    """The same search written plainly for one sentence, with no early stopping: every step
    ranks all continuations, finishes </s> among the first K, keeps the best K others.
    -> (best K as (tokens, score, finished), the step at which the documented stopping rule
    first holds). "exact": the best K of the search run to its limit; "k_finished": the best
    K when K hypotheses have finished (or at the limit)."""
    beams = [((), 0.0)]
    finished = []  # (score, tokens, finished)
    stop_at = at_stop = None
    for t in range(limit):
        candidates = []
        for tokens, lp in beams:
            lprobs = table(seed, sentence, tokens)
            for v in range(V):
                if v not in BANNED:
                    candidates.append((lp + lprobs[v].item(), tokens, v))
        candidates.sort(key=lambda c: -c[0])
        candidates = candidates[: 2 * K]
        for lp, tokens, v in candidates[:K]:
            if v == EOS:
                finished.append((lp / length_penalty(t + 1, alpha), tokens, True))
        beams = [((*tokens, v), lp) for lp, tokens, v in candidates if v != EOS][:K]
        if t + 1 == limit:
            finished += [(lp / length_penalty(limit, alpha), tk, False) for tk, lp in beams]
        best_k = sorted(finished, key=lambda f: -f[0])[:K]
        if t + 1 == limit:
            over = True
        elif stopping == "k_finished":
            over = len(finished) >= K
        else:
            over = len(best_k) == K and all(
                best_final_score(lp, t + 1, limit, alpha) <= best_k[-1][0] for _, lp in beams
            )
        if stop_at is None and over:
            stop_at, at_stop = t + 1, best_k
    best_k = sorted(finished, key=lambda f: -f[0])[:K] if stopping == "exact" else at_stop
    return [(list(tk), score, done) for score, tk, done in best_k], stop_at


def check_against_reference(seed, limits, K, alpha, device="cpu", stopping="exact"):
    out, steps = run(seed, limits, K, alpha, device, stopping)
    stops = []
    for b, limit in enumerate(limits):
        ref, stop_at = reference(seed, b, limit, K, alpha, stopping)
        got = [(h.tokens, h.finished) for h in out[b]]
        assert got == [(tk, done) for tk, _, done in ref], (seed, b)
        assert [h.score for h in out[b]] == pytest.approx([s for _, s, _ in ref], abs=1e-5)
        for h in out[b]:
            assert h.log_prob == pytest.approx(sum(h.token_log_probs), abs=1e-9)
            assert h.score == pytest.approx(h.log_prob / length_penalty(h.length, alpha), 1e-6)
        stops.append(stop_at)
    # The batch runs until its last sentence is done, and no longer.
    assert steps == max(stops)
    return stops


@pytest.mark.parametrize("alpha", [-1.0, -0.2, 0.0, 0.6, 1.5])
@pytest.mark.parametrize("K", [1, 2, 3])
def test_equals_a_search_without_early_stopping_and_stops_as_soon_as_it_may(K, alpha):
    stopped_early = 0
    for seed in range(12):
        stops = check_against_reference(seed, [5], K, alpha)
        stopped_early += stops[0] < 5
    if K > 1:
        assert stopped_early > 0  # the stopping rule was exercised, not only the limit


def test_sentences_of_a_batch_are_searched_independently():
    for seed in range(4):
        check_against_reference(seed, [4, 6, 2, 5], K=2, alpha=0.6)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
@pytest.mark.parametrize("K", [2, 3])
def test_k_finished_stops_once_k_have_finished(K, alpha):
    """CTranslate2's and fairseq's rule: the best K of the first K finished hypotheses, at
    the step the K-th finishes; never later than the exact rule, and here often sooner."""
    sooner = differs = 0
    for seed in range(16):
        (k_stop,) = check_against_reference(seed, [9], K, alpha, stopping="k_finished")
        (exact_stop,) = check_against_reference(seed, [9], K, alpha)
        assert k_stop <= exact_stop
        sooner += k_stop < exact_stop
        k_best = run(seed, [9], K, alpha, stopping="k_finished")[0][0][0]
        differs += k_best.tokens != run(seed, [9], K, alpha)[0][0][0].tokens
    assert sooner > 0  # the rule was exercised
    print(f"K {K} alpha {alpha}: {sooner}/16 stopped sooner, {differs}/16 other best output")


def test_k_finished_in_a_batch_and_unknown_rules():
    for seed in range(4):
        check_against_reference(seed, [4, 6, 2, 5], K=2, alpha=0.6, stopping="k_finished")
    with pytest.raises(ValueError, match="stopping must be one of exact, k_finished"):
        BeamSearch(torch.tensor([3]), beam_size=2, eos_id=EOS, stopping="first")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_equals_the_reference():
    for seed in range(3):
        check_against_reference(seed, [4, 6, 2, 5], K=3, alpha=0.6, device="cuda")


# --- hand-made cases ---------------------------------------------------------------------------


def only_eos(rows: int) -> torch.Tensor:
    """Next-token log-probs where </s> is the only possible token."""
    lprobs = torch.full((rows, V), NEG_INF)
    lprobs[:, EOS] = 0.0
    return lprobs


def test_eos_may_come_first_by_default_and_a_dead_search_stops_at_once():
    search = BeamSearch(torch.tensor([10]), beam_size=2, eos_id=EOS, alpha=0.6)
    search.step(only_eos(2))
    # Only one hypothesis exists (the empty output): nothing is left to search, so the
    # sentence is done after one step rather than at its limit of 10.
    assert search.done
    ((hyp,),) = search.hypotheses(n_best=2)  # fewer than n_best possible: just the one
    assert hyp.tokens == [] and hyp.finished and hyp.length == 1 and hyp.score == 0.0


def test_hypotheses_defaults_to_the_best_one():
    search = BeamSearch(torch.tensor([1, 1]), beam_size=3, eos_id=EOS)
    lprobs = torch.tensor([0.4, 0.25, 0.05, 0.2, 0.1]).log().expand(6, 5)
    search.step(lprobs)  # limit 1: the live beams are cut as they are
    assert search.done
    best = search.hypotheses()
    assert [[h.tokens for h in hyps] for hyps in best] == [[[0]], [[0]]]
    assert [len(hyps) for hyps in search.hypotheses(3)] == [3, 3]
    with pytest.raises(ValueError, match="n_best"):
        search.hypotheses(0)
    with pytest.raises(ValueError, match="n_best"):
        search.hypotheses(4)


def test_length_limits_must_allow_one_token():
    with pytest.raises(ValueError, match="length limit"):
        BeamSearch(torch.tensor([3, 0]), beam_size=2, eos_id=EOS)


def test_negative_alpha_keeps_a_beam_that_can_still_win():
    """alpha < 0 favours short outputs, so a live beam's best future is to end at the very next
    step. Here, after step 2, "B A" (P = .198) is live and the worst of K = 2 finished is "A"
    (P = .147, |Y| = 2); "B A </s>" (|Y| = 3) still beats it: the search must go on."""
    alpha = -1.0  # lp(n) = 6 / (5 + n): score = log P · (5 + n) / 6
    probs = {
        (): {EOS: 0.5, 3: 0.3, 4: 0.2},
        (3,): {EOS: 0.49, 5: 0.3, 3: 0.21},
        (4,): {3: 0.99, EOS: 0.01},
        (4, 3): {EOS: 0.99, 3: 0.01},
    }
    default = {EOS: 0.7, 3: 0.1, 4: 0.1, 5: 0.1}

    def lprobs_of(prefixes):
        out = torch.full((len(prefixes), V), NEG_INF)
        for i, p in enumerate(prefixes):
            for token, prob in probs.get(p, default).items():
                out[i, token] = math.log(prob)
        return out

    search = BeamSearch(torch.tensor([6]), beam_size=2, eos_id=EOS, alpha=alpha, banned=BANNED)
    prefixes = [(), ()]
    while not search.done:
        step = search.step(lprobs_of(prefixes))
        index, tokens = step.index.tolist(), step.tokens[:, 0].tolist()
        prefixes = [(*prefixes[i], t) for i, t in zip(index, tokens, strict=True)]
    hyps = search.hypotheses(2)[0]
    assert [h.tokens for h in hyps] == [[], [4, 3]]
    assert hyps[1].score == pytest.approx(math.log(0.2 * 0.99 * 0.99) * 8 / 6)
