"""Positional encodings: the paper's formula, its relative-position property, and RoPE."""

import math

import pytest
import torch
from torch.testing import assert_close

from aiayn.nn.positional import (
    LearnedPositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
    sinusoid_table,
)


def test_sinusoid_equals_the_formula():
    d = 16
    pe = sinusoid_table(50, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoid_with_offset_and_beyond_precomputed_length():
    enc = SinusoidalPositionalEncoding(8, max_len=10)
    x = torch.zeros(1, 4, 8)
    assert_close(enc.embed(x, offset=3)[0], sinusoid_table(7, 8)[3:])
    assert_close(enc.embed(x, offset=20)[0], sinusoid_table(24, 8)[20:])  # extrapolates


@pytest.mark.parametrize("k", [1, 5, 37])
def test_pe_pos_plus_k_is_a_fixed_linear_map_of_pe_pos(k):
    """§3.5: "for any fixed offset k, PE(pos+k) can be represented as a linear function of
    PE(pos)". The map rotates each (sin, cos) pair by k·ω_i and does not depend on pos."""
    d = 32
    pe = sinusoid_table(300, d).double()
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        w = k / 10000 ** (2 * i / d)
        # [sin(a+b), cos(a+b)] = [[cos b, sin b], [-sin b, cos b]] @ [sin a, cos a]
        M[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(w), math.sin(w)], [-math.sin(w), math.cos(w)]], dtype=torch.float64
        )
    pos = torch.arange(0, 300 - k)
    assert_close(pe[pos] @ M.T, pe[pos + k], atol=1e-5, rtol=0)
    # the best single linear map found from data fits every position (no pos-dependence)
    fit = torch.linalg.lstsq(pe[pos], pe[pos + k]).solution
    assert_close(pe[pos] @ fit, pe[pos + k], atol=1e-4, rtol=0)


def test_learned_positions_have_parameters_and_refuse_too_long():
    enc = LearnedPositionalEncoding(8, max_len=5)
    assert sum(p.numel() for p in enc.parameters()) == 40
    x = torch.zeros(2, 3, 8)
    assert_close(enc.embed(x, offset=2)[1], enc.weight[2:5])
    with pytest.raises(ValueError, match="max_len=5"):
        enc.embed(x, offset=3)


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryPositionalEncoding(head_dim=8)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 20, 8)  # same vector at every position
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 20, 8)
    rq, rk = rope.rotate(q, k)
    scores = rq[0, 0] @ rk[0, 0].T  # (20, 20)
    # constant along each diagonal: score(i, j) depends on i - j only
    assert_close(scores[5, 2], scores[15, 12])
    assert_close(scores[3, 9], scores[10, 16])
    assert not torch.allclose(scores[5, 2], scores[5, 3])
    # rotation preserves norms, and an offset equals slicing a longer rotation
    assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    rq_off, _ = rope.rotate(q[:, :, :4], k[:, :, :4], offset=6)
    assert_close(rq_off, rq[:, :, 6:10])
