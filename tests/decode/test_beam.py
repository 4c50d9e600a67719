"""Beam search: exact results on an oracle model, and equivalences on random Transformers
(beam 1 = greedy, batched = alone, cached = uncached reference)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aiayn.decode import BeamSearch, beam_search, generate, greedy_decode, length_penalty
from aiayn.models import EncoderDecoder
from aiayn.nn.kv_cache import DecoderCache

from conftest import BOS, EOS, PAD, random_ids, small_config

V = 50  # small_config's vocabulary

# --- an oracle model: hand-set next-token probabilities -------------------------------------

A, B, C = 3, 4, 5  # output tokens of the oracle (0 pad, 1 <s>, 2 </s>)
OV = 6  # oracle vocabulary
DEFAULT = {EOS: 0.7, A: 0.15, B: 0.1, C: 0.05}  # any prefix not listed

# Greedy takes A (.6) and then </s> (.3): P = .18. Beam (K=2) also keeps B (.4), whose
# </s> has .9: P = .36.
GREEDY_TRAP = {
    (): {A: 0.6, B: 0.4},
    (A,): {EOS: 0.3, A: 0.26, B: 0.24, C: 0.2},
    (B,): {EOS: 0.9, A: 0.05, B: 0.03, C: 0.02},
}
# The empty output (</s> at once, .45) beats "A A" (.5 × .95 × .9 = .4275) on log-prob, but
# "A A" wins once length is rewarded (alpha = 1).
LENGTH = {
    (): {EOS: 0.45, A: 0.5, B: 0.03, C: 0.02},
    (A,): {A: 0.95, EOS: 0.03, B: 0.012, C: 0.008},
    (A, A): {EOS: 0.9, A: 0.06, B: 0.03, C: 0.01},
}
# </s> (.5) and A (.3) fill the top K = 2, but B (.2) must survive: its </s> has .99.
STARVE = {
    (): {EOS: 0.5, A: 0.3, B: 0.2},
    (A,): {EOS: 0.1, A: 0.5, B: 0.25, C: 0.15},
    (B,): {EOS: 0.99, A: 0.005, B: 0.003, C: 0.002},
}
# After step 2, "B" (.32) and "A" (.3) are finished and the best live beam "A A" (.21) is
# below both, yet with alpha = 1 its continuation "A A A A" (.21 × .99³ = .2038, |Y| = 5)
# outscores them: stopping must use the live beam's best *future* length penalty.
LATE = {
    (): {A: 0.6, B: 0.4},
    (A,): {EOS: 0.5, A: 0.35, B: 0.1, C: 0.05},
    (B,): {EOS: 0.8, A: 0.1, B: 0.06, C: 0.04},
    (A, A): {A: 0.99, EOS: 0.005, B: 0.003, C: 0.002},
    (A, A, A): {A: 0.99, EOS: 0.005, B: 0.003, C: 0.002},
    (A, A, A, A): {EOS: 0.99, A: 0.005, B: 0.003, C: 0.002},
}
TABLES = {10: GREEDY_TRAP, 11: LENGTH, 12: STARVE, 13: LATE}  # picked by the source's 1st token


class OracleState:
    """The oracle's decoding state: the prefix grows per row (like self-attention K/V); the
    table id comes from the source (like cross-attention K/V) and only moves when the rows'
    inputs change."""

    def __init__(self, table: torch.Tensor, mask: torch.Tensor) -> None:
        self.table, self.mask = table, mask  # (N,), (N, S)
        self.prefix: torch.Tensor | None = None  # (N, t)

    def reorder(self, index: torch.Tensor, same_inputs: bool = False) -> None:
        if self.prefix is not None:
            self.prefix = self.prefix.index_select(0, index)
        if not same_inputs:
            self.table, self.mask = self.table.index_select(0, index), self.mask[index]


class OracleModel(nn.Module):
    """The decoding protocol (start, step) over fixed probability tables."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(pad_id=PAD)
        self.rows: list[int] = []  # batch size of each step
        self.starts = 0  # calls of start: the source is read once per search

    def start(self, src, capacity: int = 64) -> OracleState:
        self.starts += 1
        return OracleState(src[:, 0], src != PAD)  # the first token picks the table

    def step(self, state: OracleState, tokens):
        assert state.mask.shape[0] == tokens.shape[0] == state.table.shape[0]
        prefix = tokens if state.prefix is None else torch.cat([state.prefix, tokens], dim=1)
        state.prefix = prefix  # (N, t + 1)
        self.rows.append(tokens.shape[0])
        logits = torch.full((tokens.shape[0], OV), float("-inf"))
        for i, (table, row) in enumerate(zip(state.table.tolist(), prefix.tolist(), strict=True)):
            assert row[0] == BOS and PAD not in row and EOS not in row
            for token, p in TABLES[table].get(tuple(row[1:]), DEFAULT).items():
                logits[i, token] = math.log(p)
        return logits


def oracle_src(*table_ids_and_lengths):
    """Right-padded sources whose first token picks the table."""
    S = max(n for _, n in table_ids_and_lengths)
    rows = [[t] + [7] * (n - 1) + [PAD] * (S - n) for t, n in table_ids_and_lengths]
    return torch.tensor(rows)


def summary(hyps):
    return [(h.tokens, round(h.score, 6), h.finished) for h in hyps]


def test_oracle_beam_beats_greedy():
    model = OracleModel()
    src = oracle_src((10, 2))
    greedy = greedy_decode(model, src, BOS, EOS, max_len=5)
    assert greedy[0].tolist() == [A, EOS]  # P = .6 × .3 = .18
    hyps = beam_search(model, src, BOS, EOS, beam_size=2, alpha=0.0, max_len=5, n_best=2)[0]
    assert summary(hyps) == [
        ([B], round(math.log(0.4 * 0.9), 6), True),
        ([A], round(math.log(0.6 * 0.3), 6), True),
    ]
    assert hyps[0].score > math.log(0.18)  # never worse than greedy here: strictly better
    assert hyps[0].token_log_probs == pytest.approx([math.log(0.4), math.log(0.9)])
    assert generate(model, src, BOS, EOS, beam_size=2, alpha=0.0, max_len=5) == [[B]]
    assert generate(model, src, BOS, EOS, beam_size=1, max_len=5) == [[A]]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        # alpha 0: raw log-probs; "" (.45) > "A A" (.4275).
        (0.0, [([], math.log(0.45)), ([A, A], math.log(0.4275))]),
        # alpha 1: |Y| counts </s>, so lp("") = 6/6, lp("A A") = 8/6.
        (1.0, [([A, A], math.log(0.4275) / (8 / 6)), ([], math.log(0.45) / 1.0)]),
    ],
)
def test_oracle_length_penalty_changes_the_winner(alpha, expected):
    hyps = beam_search(
        OracleModel(), oracle_src((11, 3)), BOS, EOS, beam_size=2, alpha=alpha, max_len=6, n_best=2
    )[0]
    assert summary(hyps) == [(t, round(s, 6), True) for t, s in expected]
    assert [h.length for h in hyps] == [len(t) + 1 for t, _ in expected]


def test_oracle_finished_candidates_do_not_starve_the_beam():
    # Only top-K candidates would leave one live beam (A) after </s> takes a slot, losing B.
    hyps = beam_search(
        OracleModel(), oracle_src((12, 1)), BOS, EOS, beam_size=2, alpha=0.0, max_len=4, n_best=2
    )[0]
    assert summary(hyps) == [
        ([], round(math.log(0.5), 6), True),
        ([B], round(math.log(0.2 * 0.99), 6), True),
    ]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [([B], math.log(0.32)), ([A], math.log(0.3))]),
        (1.0, [([A] * 4, math.log(0.21 * 0.99**3) / (10 / 6)), ([B], math.log(0.32) / (7 / 6))]),
    ],
)
def test_oracle_stopping_rule_is_exact_under_the_length_penalty(alpha, expected):
    hyps = beam_search(
        OracleModel(), oracle_src((13, 2)), BOS, EOS, beam_size=2, alpha=alpha, max_len=6, n_best=2
    )[0]
    assert summary(hyps) == [(t, round(s, 6), True) for t, s in expected]
    # Even K = 1 keeps the runner-up of greedy's </s> live, so with alpha > 0 it finds more.
    ((best,),) = beam_search(OracleModel(), oracle_src((13, 2)), BOS, EOS, 1, alpha, max_len=6)
    assert best.tokens == ([A] if alpha == 0 else [A] * 4)


def test_oracle_length_limit_finishes_live_beams_as_they_are():
    # One step allowed: </s> finishes "" (.45); the live beams A (.5) and B (.03) are cut.
    hyps = beam_search(
        OracleModel(), oracle_src((11, 3)), BOS, EOS, beam_size=2, alpha=0.0, max_len=1, n_best=2
    )[0]
    assert summary(hyps) == [
        ([A], round(math.log(0.5), 6), False),
        ([], round(math.log(0.45), 6), True),
    ]
    assert hyps[0].length == 1  # no </s>: |Y| is the number of tokens


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_oracle_batch_equals_alone_and_drops_finished_sentences(alpha):
    model = OracleModel()
    sources = [(11, 3), (10, 1), (12, 4)]
    src = oracle_src(*sources)
    batched = beam_search(model, src, BOS, EOS, beam_size=2, alpha=alpha, n_best=2)
    if alpha == 0.0:  # GREEDY_TRAP and STARVE are done after 2 steps, LENGTH after 3
        assert model.rows == [3, 6, 2]  # the first step once per source, not once per beam
    assert model.starts == 1  # the source is read once, whatever the steps
    for source, hyps in zip(sources, batched, strict=True):
        alone = beam_search(model, oracle_src(source), BOS, EOS, beam_size=2, alpha=alpha, n_best=2)
        assert summary(hyps) == summary(alone[0])


# --- the strategy alone ---------------------------------------------------------------------


def test_first_step_gives_k_distinct_beams():
    search = BeamSearch(torch.tensor([5, 5]), beam_size=3, eos_id=EOS)
    lprobs = torch.randn(V).log_softmax(-1).expand(2 * 3, V)  # every beam says the same
    step = search.step(lprobs)
    first = step.tokens.view(2, 3)
    assert all(len(set(row)) == 3 for row in first.tolist())  # not three copies of the argmax
    assert step.index.tolist() == [0, 0, 0, 3, 3, 3]  # all extend beam 0 of their sentence


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_best"):
        beam_search(OracleModel(), oracle_src((10, 2)), BOS, EOS, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="beam_size"):
        BeamSearch(torch.tensor([3]), beam_size=0, eos_id=EOS)


# --- random Transformers --------------------------------------------------------------------


def padded_batch(lengths):
    """Random sources of the given lengths, right-padded. Shape: (len(lengths), max)."""
    src = random_ids(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    return src


def random_model(seed=0, **bias):
    """A random small Transformer whose outputs vary between sentences (untied output layer;
    tied ones mostly repeat one token), with constant biases on some logits (e.g. eos=2.0
    makes some sentences end early). `model.steps` counts decoder calls."""
    torch.manual_seed(seed)
    model = EncoderDecoder(small_config(tie_embeddings="none")).eval()
    add = torch.zeros(V)
    for token, value in bias.items():
        add[{"pad": PAD, "bos": BOS, "eos": EOS}[token]] = value
    model.steps = 0

    def hook(module, inputs, out):
        model.steps += 1
        return out + add

    model.generator.register_forward_hook(hook)
    return model


def sequence_log_prob(model, src_row, tokens):
    """Teacher-forced log P(tokens | src) for one sentence (tokens include </s> if any)."""
    prefix = torch.tensor([[BOS, *tokens[:-1]]])
    lprobs = model(src_row[None], prefix)[0].float().log_softmax(-1)  # (T, V)
    return lprobs.gather(1, torch.tensor(tokens)[:, None]).sum().item()


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_beam_of_one_equals_greedy(seed):
    # Greedy does not ban padding/<s>: keep the model from wanting them.
    model = random_model(seed, pad=-30.0, bos=-30.0, eos=2.0)
    src = padded_batch([5, 3, 7, 4])
    greedy = greedy_decode(model, src, BOS, EOS, max_len=8)
    hyps = beam_search(model, src, BOS, EOS, beam_size=1, alpha=0.0, max_len=8)
    assert generate(model, src, BOS, EOS, beam_size=1, max_len=8) == [h[0].tokens for h in hyps]
    for i, (row, (hyp,)) in enumerate(zip(greedy.tolist(), hyps, strict=True)):
        n = row.index(EOS) if EOS in row else len(row)
        assert hyp.tokens == row[:n]
        assert hyp.finished == (EOS in row)
        scored = hyp.tokens + [EOS] * hyp.finished
        assert hyp.log_prob == pytest.approx(sequence_log_prob(model, src[i], scored), abs=1e-4)
    ended = sum(h.finished for (h,) in hyps)
    assert 0 < ended < len(hyps)  # rows that end early and rows cut at the limit, together


def test_batched_equals_each_sentence_alone():
    model = random_model(0, eos=2.0)  # sentences end at different steps: the batch shrinks
    lengths = [5, 3, 7, 4]
    src = padded_batch(lengths)
    # extra_len: each sentence's limit is its own length + 4, whatever the padding.
    batched = beam_search(model, src, BOS, EOS, beam_size=3, alpha=0.6, extra_len=4, n_best=3)
    for i, n in enumerate(lengths):
        alone = beam_search(
            model, src[i : i + 1, :n], BOS, EOS, beam_size=3, alpha=0.6, extra_len=4, n_best=3
        )[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in alone], abs=1e-5)
        assert all(h.length <= n + 4 for h in alone)


def test_n_best_sorted_distinct_and_rescored_exactly():
    model = random_model(0, eos=2.0)
    src = padded_batch([5, 3, 4])
    out = beam_search(model, src, BOS, EOS, beam_size=4, alpha=0.6, max_len=6, n_best=4)
    assert any(h.finished for hyps in out for h in hyps)
    assert any(not h.finished for hyps in out for h in hyps)
    for i, hyps in enumerate(out):
        assert len(hyps) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4
        for h in hyps:
            assert h.length <= 6 and len(h.tokens) == h.length - h.finished
            assert not {PAD, BOS, EOS} & set(h.tokens)
            assert h.score == pytest.approx(h.log_prob / length_penalty(h.length, 0.6), abs=1e-5)
            scored = h.tokens + [EOS] * h.finished
            assert h.log_prob == pytest.approx(sequence_log_prob(model, src[i], scored), abs=1e-4)


def test_never_emits_pad_or_bos_even_when_the_model_wants_them():
    model = random_model(pad=20.0, bos=20.0)
    src = random_ids(3, 4)
    for hyps in beam_search(model, src, BOS, EOS, beam_size=3, max_len=5, n_best=3):
        for h in hyps:
            assert not {PAD, BOS, EOS} & set(h.tokens) and len(h.tokens) == 5
    # generate's greedy path bans them too, so it still equals beam search with K = 1.
    beam_1 = beam_search(model, src, BOS, EOS, beam_size=1, alpha=0.0, max_len=5)
    assert generate(model, src, BOS, EOS, beam_size=1, max_len=5) == [h.tokens for (h,) in beam_1]


def test_length_limits_and_eos():
    model = random_model(eos=-1e4)  # never ends: every hypothesis is cut at the limit
    src = padded_batch([3, 5])
    out = beam_search(model, src, BOS, EOS, beam_size=3, extra_len=2, n_best=3)
    assert [[len(h.tokens) for h in hyps] for hyps in out] == [[5] * 3, [7] * 3]
    assert not any(h.finished for hyps in out for h in hyps)
    assert [len(t) for t in generate(model, src, BOS, EOS, beam_size=2, max_len=4)] == [4, 4]
    assert [len(t) for t in generate(model, src, BOS, EOS, beam_size=1, extra_len=2)] == [5, 7]
    for k in (1, 2):  # max_len caps each sentence's own limit
        assert [len(t) for t in generate(model, src, BOS, EOS, k, extra_len=2, max_len=6)] == [5, 6]
    model = random_model(eos=1e4)  # </s> at once: empty outputs, |Y| = 1
    assert generate(model, src, BOS, EOS) == [[], []]
    model.steps = 0
    (best,), _ = beam_search(model, src, BOS, EOS, beam_size=3, alpha=0.0)
    assert best.tokens == [] and best.finished and best.length == 1
    # Step 1 finishes "" alone (only beam 0 is live), step 2 the other K - 1 + 1: then no
    # live beam can beat the worst of K finished, long before the limit (5 + 50).
    assert model.steps == 2


def test_cross_attention_kv_not_copied_when_beams_reorder(monkeypatch):
    calls = {"cross": 0, "self_only": 0}
    original = DecoderCache.reorder

    def spy(self, index, cross=True):
        calls["cross" if cross else "self_only"] += 1
        original(self, index, cross)

    monkeypatch.setattr(DecoderCache, "reorder", spy)
    model = random_model()
    beam_search(model, random_ids(1, 4), BOS, EOS, beam_size=3, max_len=6)
    # one sentence, never compacted: cross K/V are copied once, when the state computed by the
    # first step (once per source) is repeated per beam; beams then only swap self K/V.
    assert calls == {"cross": 1, "self_only": 4}
    calls.update(cross=0, self_only=0)
    model = random_model(3, eos=2.5)  # sentences end at different steps
    beam_search(model, padded_batch([5, 3, 7, 4]), BOS, EOS, beam_size=3, max_len=6)
    assert calls["cross"] > 0 and calls["self_only"] > 0  # cross K/V move on compaction only


# --- cached search vs an uncached, early-stop-free reference ---------------------------------


def reference_beam_search(model, src_row, K, alpha, limit):
    """The same algorithm, written plainly for one sentence: the whole prefix through the
    decoder each step (no cache), Python lists, and no early stopping (run to the limit)."""
    memory, memory_mask = model.encode(src_row[None])
    beams = [([], 0.0, [])]  # (tokens, log_prob, token log-probs); only one at the start
    finished = []  # (score, tokens, finished)
    for t in range(limit):
        prefix = torch.tensor([[BOS, *tokens] for tokens, _, _ in beams])  # (k, t + 1)
        n = len(beams)
        logits = model.decode(prefix, memory.expand(n, -1, -1), memory_mask.expand(n, -1, -1, -1))
        lprobs = F.log_softmax(logits[:, -1].float(), dim=-1)  # (k, V)
        lprobs[:, [PAD, BOS]] = float("-inf")
        candidates = sorted(
            (
                (lp + lprobs[i, v].item(), tokens, v)
                for i, (tokens, lp, _) in enumerate(beams)
                for v in range(lprobs.shape[1])
            ),
            key=lambda c: -c[0],
        )[: 2 * K]
        for lp, tokens, v in candidates[:K]:
            if v == EOS:
                finished.append((lp / length_penalty(t + 1, alpha), tokens, True))
        beams = [([*tokens, v], lp, None) for lp, tokens, v in candidates if v != EOS][:K]
        if t + 1 == limit:
            finished += [(lp / length_penalty(t + 1, alpha), tk, False) for tk, lp, _ in beams]
    finished.sort(key=lambda f: -f[0])
    return [(tokens, score, done) for score, tokens, done in finished[:K]]


@pytest.mark.parametrize(
    ("seed", "eos_bias", "alpha", "stops_early"),
    [(0, 2.0, 0.6, False), (3, 2.5, 0.0, True), (3, 2.5, 1.0, True)],
)
def test_cached_beam_search_equals_uncached_reference(seed, eos_bias, alpha, stops_early):
    model = random_model(seed, eos=eos_bias)
    src = padded_batch([5, 3, 7, 4])
    out = beam_search(model, src, BOS, EOS, beam_size=3, alpha=alpha, max_len=6, n_best=3)
    assert (model.steps < 6) == stops_early  # the reference always runs all 6 steps
    for i, hyps in enumerate(out):
        n = int((src[i] != PAD).sum())
        ref = reference_beam_search(model, src[i, :n], 3, alpha, limit=6)
        assert [(h.tokens, h.finished) for h in hyps] == [(t, f) for t, _, f in ref]
        assert [h.score for h in hyps] == pytest.approx([s for _, s, _ in ref], abs=1e-5)


def test_min_len_holds_back_eos_and_min_equal_max_fixes_the_length():
    model = random_model(eos=1e4)  # wants </s> at once
    src = padded_batch([3, 5])
    for k in (1, 3):
        assert [len(t) for t in generate(model, src, BOS, EOS, k, min_len=2)] == [2, 2]
        # min_len = max_len: every output runs to exactly that many tokens (benchmarks).
        assert [len(t) for t in generate(model, src, BOS, EOS, k, max_len=6, min_len=6)] == [6, 6]
    # The eos ban is exact: K = 1 with min_len still equals greedy with min_len, token for token.
    model = random_model(0, pad=-30.0, bos=-30.0, eos=2.0)
    src = padded_batch([5, 3, 7, 4])
    greedy = greedy_decode(model, src, BOS, EOS, max_len=8, min_len=3)
    hyps = beam_search(model, src, BOS, EOS, beam_size=1, alpha=0.0, max_len=8, min_len=3)
    for row, (hyp,) in zip(greedy.tolist(), hyps, strict=True):
        n = row.index(EOS) if EOS in row else len(row)
        assert n >= 3 and hyp.tokens == row[:n]
