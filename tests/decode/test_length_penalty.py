"""GNMT length penalty: lp(Y) = ((5 + |Y|) / 6) ** alpha, checked against hand-computed values."""

import pytest
import torch

from aiayn.decode import length_penalty, normalized_score


@pytest.mark.parametrize(
    ("length", "alpha", "expected"),
    [
        (1, 0.6, 1.0),  # (6 / 6) ** 0.6
        (7, 0.6, 1.5157165665),  # 2 ** 0.6
        (4, 1.0, 1.5),  # 9 / 6
        (13, 0.5, 1.7320508076),  # sqrt(3)
        (25, 2.0, 25.0),  # 5 ** 2
        (40, 0.0, 1.0),  # alpha 0: no penalty
    ],
)
def test_gnmt_penalty_values(length, alpha, expected):
    assert length_penalty(length, alpha) == pytest.approx(expected, rel=1e-9)


def test_default_alpha_is_the_papers():
    assert length_penalty(7) == pytest.approx(1.5157165665)  # §6.1: alpha = 0.6


def test_score_divides_log_prob_and_alpha_zero_is_raw():
    assert normalized_score(-3.0, 7, 0.6) == pytest.approx(-1.9792618662)  # -3 / 2 ** 0.6
    assert normalized_score(-2.5, 10, 0.0) == -2.5
    # Longer hypotheses are penalised less per unit of log-prob: with alpha 1 a length-11
    # hypothesis at -3 outscores a length-1 one at -1.2 (-3 / (16/6) = -1.125).
    assert normalized_score(-3.0, 11, 1.0) > normalized_score(-1.2, 1, 1.0)


def test_tensor_lengths_elementwise():
    lengths = torch.tensor([1, 4, 7])
    assert torch.allclose(length_penalty(lengths, 1.0), torch.tensor([1.0, 1.5, 2.0]))
    scores = normalized_score(torch.tensor([-1.0, -3.0, -4.0]), lengths, 1.0)
    assert torch.allclose(scores, torch.tensor([-1.0, -2.0, -2.0]))
