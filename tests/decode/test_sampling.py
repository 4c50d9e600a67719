"""Sampling: the logits processors on hand-made distributions and against HF's, greedy limits,
seeded reproducibility (per batch and per row) and the empirical distribution of the samples."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close
from transformers.generation import logits_process

from aiayn.decode.sampling import (
    Sampler,
    SamplingConfig,
    repetition_penalty,
    temperature,
    top_k,
    top_p,
)
from aiayn.errors import ConfigError

NEG_INF = float("-inf")


def hf_processors():
    """HF's processors, the reference our functions must equal (the dev extra installs it)."""
    return logits_process


def kept(logits: torch.Tensor) -> set[int]:
    """Ids of row 0 that survived filtering. Shape: logits (1, V)."""
    return set(torch.isfinite(logits[0]).nonzero().flatten().tolist())


# --- hand-made distributions ----------------------------------------------------------------

# Dyadic probabilities: their fp32 softmax is exact (checked below), so cumulative sums hit the
# boundaries exactly. Ids are shuffled so "keep the first ones" cannot pass by accident.
IDS = [4, 0, 6, 2, 5]  # most probable first
PROBS = [0.5, 0.25, 0.125, 0.0625, 0.0625]
V = 7  # ids 1 and 3 have probability 0 (logit -inf)


def dyadic_logits() -> torch.Tensor:
    """Shape: -> (1, V) fp32 with softmax exactly PROBS at IDS."""
    probs = torch.zeros(1, V, dtype=torch.float64)
    probs[0, IDS] = torch.tensor(PROBS, dtype=torch.float64)
    logits = probs.log().float()  # (1, V)
    assert torch.equal(logits.softmax(-1), probs.float()), "fp32 softmax must be exact here"
    return logits


@pytest.mark.parametrize(
    ("k", "expected"),
    [(1, {4}), (2, {4, 0}), (3, {4, 0, 6}), (5, set(IDS)), (7, set(IDS)), (100, set(IDS))],
)
def test_top_k_keeps_exactly_the_k_largest(k, expected):
    logits = dyadic_logits()
    out = top_k(logits, k)
    assert kept(out) == expected
    assert_close(out[0, sorted(expected)], logits[0, sorted(expected)])  # kept ones unchanged


def test_top_k_keeps_every_token_tied_at_the_cut():
    # ids 2 and 5 share the 4th largest logit: both stay (the rule HF uses too).
    assert kept(top_k(dyadic_logits(), 4)) == {4, 0, 6, 2, 5}
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    assert kept(top_k(logits, 2)) == {1, 2, 3}


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.4, {4}),  # the top token alone exceeds p
        (0.5, {4}),  # the top token alone reaches p exactly: the nucleus stops there
        (0.6, {4, 0}),
        (0.75, {4, 0}),  # .5 + .25 = p exactly
        (0.76, {4, 0, 6}),
        (0.875, {4, 0, 6}),  # .5 + .25 + .125 = p exactly
        (0.9, {4, 0, 6, 2, 5}),  # tokens tied at the cut are all kept
        (1.0, set(IDS)),
    ],
)
def test_top_p_keeps_exactly_the_nucleus(p, expected):
    logits = dyadic_logits()
    out = top_p(logits, p)
    assert kept(out) == expected
    assert_close(out[0, sorted(expected)], logits[0, sorted(expected)])
    if p != 0.9:  # no tie straddles the cut: HF keeps exactly the same tokens
        hf = hf_processors().TopPLogitsWarper(p)(None, logits.clone())
        assert_close(out, hf, rtol=0, atol=0)


def test_top_p_keeps_ties_at_the_cut_where_hf_keeps_one():
    # p = .9375 = 1 - .0625: the smallest nucleus needs one of the two .0625 tokens. Ours keeps
    # both (independent of sort order); HF keeps whichever its sort puts last.
    logits = dyadic_logits()
    assert kept(top_p(logits, 0.9375)) == set(IDS)
    hf = hf_processors().TopPLogitsWarper(0.9375)(None, logits.clone())
    assert len(kept(hf)) == 4


# --- equality with HF on random logits ------------------------------------------------------


@pytest.mark.parametrize(
    ("penalty", "temp", "k", "p"),
    [
        (1.2, 0.7, 10, 0.9),
        (0.8, 1.3, None, 0.5),
        (1.5, 1.0, 5, None),
        (1.0, 0.5, None, 0.95),
        (2.0, 2.0, 40, 0.3),
        (1.3, 1.0, 1000, 0.999),
    ],
)
def test_processors_equal_hf_in_generate_order(penalty, temp, k, p):
    lp = hf_processors()
    gen = torch.Generator().manual_seed(1)
    B, Vr, L = 4, 64, 12
    logits = torch.randn(B, Vr, generator=gen) * 3  # (B, V)
    history = torch.randint(0, Vr, (B, L), generator=gen)  # (B, L)
    chain = [lp.RepetitionPenaltyLogitsProcessor(penalty), lp.TemperatureLogitsWarper(temp)]
    if k is not None:
        chain.append(lp.TopKLogitsWarper(k))
    if p is not None:
        chain.append(lp.TopPLogitsWarper(p))
    expected = logits.clone()
    for proc in chain:
        expected = proc(history, expected)

    cfg = SamplingConfig(temperature=temp, top_k=k, top_p=p, repetition_penalty=penalty)
    before = logits.clone()
    ours = Sampler(cfg).process(logits, history)
    assert_close(ours, expected, rtol=0, atol=0)
    assert torch.equal(logits, before)  # pure: the input is not modified
    # The functions one by one give the same.
    one_by_one = temperature(repetition_penalty(logits, history, penalty), temp)
    one_by_one = top_k(one_by_one, k) if k is not None else one_by_one
    one_by_one = top_p(one_by_one, p) if p is not None else one_by_one
    assert_close(one_by_one, expected, rtol=0, atol=0)


def test_repetition_penalty_ignores_padding():
    lp = hf_processors()
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0, 1.0, 4.0, -0.5, 0.0, 3.0, -2.0]] * 3)  # (3, V)
    # Row 0 pads with id 0 (a real vocabulary id), row 1 with -1, row 2 has no padding.
    history = torch.tensor([[0, 0, 3, 5, 3], [-1, -1, -1, 1, 8], [2, 9, 2, 4, 7]])  # (3, 5)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = repetition_penalty(logits, history, 2.0, mask)
    for b in range(3):
        real = history[b][mask[b]][None]  # (1, L_b): the unpadded history
        hf = lp.RepetitionPenaltyLogitsProcessor(2.0)(real, logits[b : b + 1].clone())
        assert_close(out[b : b + 1], hf, rtol=0, atol=0)
    assert out[0, 0] == logits[0, 0]  # the pad id itself is not penalised
    assert out[0, 3] == -6.0 and out[0, 5] == 2.0  # negative ×2, positive /2, once each
    expected_1 = logits[1].clone()
    expected_1[1], expected_1[8] = -2.0, 1.5  # ids 1 and 8 only: the -1 padding is ignored
    assert_close(out[1], expected_1, rtol=0, atol=0)
    # Without a mask every entry counts, so the pad id 0 of row 0 would be penalised.
    assert repetition_penalty(logits, history.clamp(min=0), 2.0)[0, 0] == 1.0


# --- greedy ---------------------------------------------------------------------------------


def test_temperature_zero_and_top_k_one_are_argmax():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(16, 40, generator=gen)  # (B, V)
    history = torch.randint(0, 40, (16, 6), generator=gen)  # (B, L)
    for cfg in (
        SamplingConfig(temperature=0.0),
        SamplingConfig(temperature=0.0, top_k=3, top_p=0.2),
        SamplingConfig(top_k=1),
        SamplingConfig(temperature=1.7, top_k=1, top_p=0.9),
    ):
        g = torch.Generator().manual_seed(0)
        state = g.get_state()
        assert torch.equal(Sampler(cfg)(logits, generator=g), logits.argmax(-1)), cfg
        assert torch.equal(g.get_state(), state)  # greedy draws no random numbers
    # With a penalty and banned ids, greedy is the argmax of the penalised, banned logits.
    sampler = Sampler(SamplingConfig(temperature=0.0, repetition_penalty=1.5), banned=(7,))
    expected = repetition_penalty(logits, history, 1.5).index_fill(1, torch.tensor([7]), NEG_INF)
    assert torch.equal(sampler(logits, history), expected.argmax(-1))


def test_banned_ids_are_never_chosen():
    logits = torch.zeros(2, 5)
    logits[:, 3] = 10.0  # the overwhelming favourite ...
    sampler = Sampler(SamplingConfig(top_k=1), banned=[3, 0])  # ... is banned
    assert sampler(logits).tolist() == [1, 1]  # argmax of what is left; ties go to the low id
    gen = torch.Generator().manual_seed(0)
    draws = Sampler(banned=[3, 0])(logits[:1].expand(2000, -1), generator=gen)
    assert not torch.isin(draws, torch.tensor([0, 3])).any()


# --- randomness -----------------------------------------------------------------------------


def test_seeded_sampling_reproduces_and_seeds_differ():
    logits = torch.randn(64, 30, generator=torch.Generator().manual_seed(3))  # (B, V)
    sampler = Sampler(SamplingConfig(temperature=1.5, top_p=0.95))

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.stack([sampler(logits, generator=gen) for _ in range(3)])  # (3, B)

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_per_row_generators_make_a_row_independent_of_its_batch():
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(4))  # (B, V)
    sampler = Sampler(SamplingConfig(temperature=2.0))
    seeds = [11, 12, 13, 14, 15]
    batch = sampler(logits, generator=[torch.Generator().manual_seed(s) for s in seeds])
    for i, s in enumerate(seeds):
        alone = sampler(logits[i : i + 1], generator=torch.Generator().manual_seed(s))
        assert batch[i] == alone[0]
    with pytest.raises(ValueError, match="generators"):
        sampler(logits, generator=[torch.Generator()])


def test_samples_follow_the_processed_distribution():
    # temperature .8, then top-k 6 and top-p .9 leave 4 tokens with unequal probabilities.
    logits = torch.tensor([[1.0, 0.2, 2.0, -1.0, 1.5, 0.0, 0.7, -0.3]])  # (1, V)
    cfg = SamplingConfig(temperature=0.8, top_k=6, top_p=0.9)
    sampler = Sampler(cfg)
    probs = sampler.process(logits).softmax(-1)[0]  # (V,)
    assert int((probs > 0).sum()) == 4
    n = 20_000
    gen = torch.Generator().manual_seed(5)
    draws = sampler(logits.expand(n, -1), generator=gen)  # (n,)
    counts = torch.bincount(draws, minlength=8).double()  # (V,)
    assert (counts[probs == 0] == 0).all()
    expected = n * probs.double()
    nz = probs > 0
    chi2 = float(((counts[nz] - expected[nz]) ** 2 / expected[nz]).sum())
    assert chi2 < 16.27, chi2  # chi-square, 3 degrees of freedom, p = 0.001
    # Unprocessed probabilities (temperature ignored) would be rejected by the same test.
    raw = n * Sampler(SamplingConfig(top_k=6, top_p=0.9)).process(logits).softmax(-1)[0]
    assert float(((counts[nz] - raw[nz]) ** 2 / raw[nz]).sum()) > 16.27


def test_low_precision_logits_are_processed_in_fp32():
    logits = torch.randn(3, 20).bfloat16()  # (B, V)
    history = torch.randint(0, 20, (3, 4))
    sampler = Sampler(SamplingConfig(temperature=0.7, top_k=8, top_p=0.8, repetition_penalty=1.3))
    out = sampler.process(logits, history)
    assert out.dtype == torch.float32
    assert_close(out, sampler.process(logits.float(), history), rtol=0, atol=0)
    gen = torch.Generator().manual_seed(0)
    assert sampler(logits, history, generator=gen).dtype == torch.long


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", float("inf")),
        ("top_k", 0),
        ("top_k", 2.5),
        ("top_k", True),
        ("top_p", 0.0),
        ("top_p", 1.01),
        ("repetition_penalty", 0.0),
        ("repetition_penalty", -1.0),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        SamplingConfig(**{field: value})


def test_function_arguments_are_checked():
    logits = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="greedy"):
        temperature(logits, 0.0)
    with pytest.raises(ValueError, match="top_k"):
        top_k(logits, 0)
    with pytest.raises(ValueError, match="top_p"):
        top_p(logits, 0.0)
    with pytest.raises(ValueError, match="penalty"):
        repetition_penalty(logits, torch.zeros(1, 1, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="history"):
        Sampler(SamplingConfig(repetition_penalty=1.2))(logits)
