"""Additive (Bahdanau) attention: its scores are vᵀ tanh(q + k), computed pair by pair here, and
it keeps multi-head attention's masking, caching and padding behaviour."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from aiayn.nn.additive_attention import AdditiveAttention
from aiayn.nn.kv_cache import KVCache
from aiayn.nn.masks import lengths_mask


def test_scores_are_v_tanh_q_plus_k_pair_by_pair():
    torch.manual_seed(0)
    attn = AdditiveAttention(12, 3).eval()
    x = torch.randn(2, 5, 12)
    _, weights = attn(x, need_weights=True)  # (2, 3, 5, 5)
    q = attn.split_heads(attn.w_q(x))  # (2, 3, 5, 4)
    k = attn.split_heads(attn.w_k(x))
    scores = torch.empty(2, 3, 5, 5)
    for b in range(2):
        for h in range(3):
            for i in range(5):
                for j in range(5):
                    scores[b, h, i, j] = attn.v[h] @ torch.tanh(q[b, h, i] + k[b, h, j])
    assert_close(weights, scores.softmax(-1))


def test_padded_keys_get_no_weight_and_change_nothing():
    torch.manual_seed(0)
    attn = AdditiveAttention(8, 2).eval()
    x = torch.randn(1, 4, 8)
    padded = torch.cat([x, torch.randn(1, 3, 8)], dim=1)  # (1, 7, 8)
    mask = lengths_mask(torch.tensor([4]), 7)  # (1, 1, 1, 7)
    out, weights = attn(padded, mask=mask, need_weights=True)
    assert (weights[..., 4:] == 0).all()
    assert_close(out[:, :4], attn(x)[0])


def test_cached_steps_equal_the_causal_whole_sequence():
    torch.manual_seed(0)
    attn = AdditiveAttention(8, 2).eval()
    x = torch.randn(2, 6, 8)
    whole, _ = attn(x, is_causal=True)
    cache = KVCache()
    steps = [attn(x[:, t : t + 1], cache=cache)[0] for t in range(6)]
    assert_close(torch.cat(steps, dim=1), whole)
