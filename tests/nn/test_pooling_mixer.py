"""The 1-D pooling mixer (text): each real token becomes the mean of the real tokens among its
k neighbours minus itself, and padding never enters a real token's average."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from aiayn.nn.masks import lengths_mask
from aiayn.nn.pooling_mixer import PoolingMixer


def hand_pooled(x: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Shape: x (T, D) whose first n tokens are real -> (T, D), zeros on padding."""
    out = torch.zeros_like(x)
    for t in range(n):
        near = [x[j] for j in range(t - k // 2, t + k // 2 + 1) if 0 <= j < n]
        out[t] = sum(near) / len(near) - x[t]
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_sequence_pooling_averages_real_neighbours_minus_itself(k):
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3)  # (B, T, D)
    lengths = torch.tensor([7, 4])
    out, weights = PoolingMixer(k, dims=1)(x, mask=lengths_mask(lengths, 7))
    assert weights is None
    expected = torch.stack([hand_pooled(x[b], int(lengths[b]), k) for b in range(2)])
    assert_close(out, expected)


def test_padding_changes_no_real_token_and_no_mask_means_all_real():
    torch.manual_seed(0)
    mixer = PoolingMixer(3, dims=1)
    x = torch.randn(1, 5, 4)
    padded = torch.cat([x, 100 * torch.randn(1, 3, 4)], dim=1)  # (1, 8, 4)
    out, _ = mixer(padded, mask=lengths_mask(torch.tensor([5]), 8))
    assert_close(out[:, :5], mixer(x)[0])
    assert (out[:, 5:] == 0).all()


def test_sequence_pooling_refuses_a_query_mask_and_the_grid_refuses_any_mask():
    with pytest.raises(ValueError, match="key-padding"):
        PoolingMixer(3, dims=1)(torch.randn(1, 4, 2), mask=torch.ones(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no mask"):
        PoolingMixer(3)(torch.randn(1, 4, 2), mask=torch.ones(1, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="dims"):
        PoolingMixer(3, dims=3)
