"""Ensemble: the mean of the members' probabilities, decoded by the unchanged searches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aiayn.decode import beam_search, generate
from aiayn.models import EncoderDecoder
from aiayn.models.ensemble import Ensemble

from conftest import BOS, EOS, PAD, random_ids, small_config


def padded_source() -> torch.Tensor:
    src = random_ids(3, 7)  # (3, 7)
    src[1, 5:] = PAD  # a shorter sentence: the members' padding masks must agree
    src[2, 3:] = PAD
    return src


def members() -> list[EncoderDecoder]:
    """Two different members: other widths and depths, one vocabulary."""
    wide = EncoderDecoder(small_config()).eval()
    narrow = EncoderDecoder(small_config(d_model=16, n_heads=2, d_ff=32, n_decoder_layers=1))
    return [wide, narrow.eval()]


def test_ensemble_is_the_mean_of_the_members_probabilities() -> None:
    models = members()
    src, tgt = padded_source(), random_ids(3, 5)
    tgt[:, 0] = BOS
    with torch.no_grad():
        got = Ensemble(models)(src, tgt)  # (3, 5, V)
        probs = [F.softmax(m(src, tgt).float(), dim=-1) for m in models]
    expected = torch.log((probs[0] + probs[1]) / 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.allclose(got.exp().sum(-1), torch.ones(3, 5))  # a distribution per position


def test_incremental_decoding_equals_full_decoding() -> None:
    ensemble = Ensemble(members())
    src, tgt = padded_source(), random_ids(3, 6)
    tgt[:, 0] = BOS
    with torch.no_grad():
        full = ensemble(src, tgt)  # (3, 6, V)
        state = ensemble.start(src, capacity=2)  # small: the members' caches must grow
        steps = [ensemble.step(state, tgt[:, t : t + 1]) for t in range(tgt.shape[1])]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert all(member.cache.length == tgt.shape[1] for member in state.members)


@pytest.mark.parametrize("beam", [1, 4])
def test_an_ensemble_of_one_model_decodes_as_the_model(beam: int) -> None:
    model = members()[0]
    src = padded_source()
    options = dict(beam_size=beam, alpha=0.6, extra_len=12)
    assert generate(Ensemble([model]), src, BOS, EOS, **options) == generate(
        model, src, BOS, EOS, **options
    )


def test_beam_search_over_an_ensemble_of_copies_keeps_the_models_scores() -> None:
    # Two copies average to the model itself: same outputs, same log-probabilities. This
    # exercises the reordering of every member's cache when beams swap and sentences finish.
    model = members()[0]
    src = padded_source()
    alone = beam_search(model, src, BOS, EOS, beam_size=4, n_best=4, extra_len=12)
    pair = beam_search(Ensemble([model, model]), src, BOS, EOS, beam_size=4, n_best=4, extra_len=12)
    for hyps, pair_hyps in zip(alone, pair, strict=True):
        assert [h.tokens for h in hyps] == [h.tokens for h in pair_hyps]
        for h, p in zip(hyps, pair_hyps, strict=True):
            assert p.log_prob == pytest.approx(h.log_prob, abs=1e-4)


def test_members_must_share_the_vocabulary() -> None:
    other = EncoderDecoder(small_config(src_vocab_size=60, tgt_vocab_size=60))
    with pytest.raises(ValueError, match=r"model 2 .* share one vocabulary"):
        Ensemble([members()[0], other])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_the_ensemble_takes_the_shortest_members_length() -> None:
    ensemble = Ensemble([EncoderDecoder(small_config(max_len=32)), members()[0]])
    assert ensemble.config.max_len == 32
