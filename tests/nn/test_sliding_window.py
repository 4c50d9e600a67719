"""Sliding-window attention: blocked O(T·w) path == dense attention with `band_mask`."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from aiayn.nn.attention import scaled_dot_product_attention
from aiayn.nn.masks import causal_mask, combine, lengths_mask
from aiayn.nn.sliding_window import band_mask, sliding_window_attention

B, H, DH = 2, 3, 8

# (T, window): multiples, remainders, window 0 and 1, window = T-2, T-1, T and beyond, T = 1.
SHAPES = [(8, 2), (10, 3), (7, 0), (7, 1), (16, 4), (6, 4), (6, 5), (5, 5), (5, 9), (1, 0)]


def qkv(T, dtype=torch.float32, requires_grad=False):
    return [torch.randn(B, H, T, DH, dtype=dtype, requires_grad=requires_grad) for _ in range(3)]


def padding(T):
    """(B, 1, 1, T): row 0 unpadded, row 1 with 3 padded keys at the end (at least 1 real)."""
    return lengths_mask(torch.tensor([T, max(T - 3, 1)]), T)


def reference(q, k, v, window, causal, key_mask=None):
    """Dense math path with the band mask; rows with no allowed key -> zeros (our convention)."""
    T = q.shape[-2]
    mask = combine(band_mask(T, window, causal), key_mask)
    mask = mask.expand(q.shape[0], 1, T, T)  # (B, 1, T, T)
    out, _ = scaled_dot_product_attention(q, k, v, mask, impl="math")
    return out.masked_fill(~mask.any(-1, keepdim=True), 0.0)


def test_band_mask_is_the_rule():
    assert band_mask(4, 1, causal=False).int().tolist() == [
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [0, 1, 1, 1],
        [0, 0, 1, 1],
    ]
    assert band_mask(4, 1, causal=True).int().tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ]
    assert torch.equal(band_mask(5, 0, causal=True), torch.eye(5, dtype=torch.bool))


@pytest.mark.parametrize("padded", [False, True], ids=["no-pad", "pad"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize(("T", "window"), SHAPES)
def test_equals_dense_band_attention(T, window, causal, padded):
    q, k, v = qkv(T)
    key_mask = padding(T) if padded else None
    out = sliding_window_attention(q, k, v, window, causal, key_mask)
    assert out.shape == (B, H, T, DH)
    assert_close(out, reference(q, k, v, window, causal, key_mask), atol=1e-5, rtol=1e-5)


def test_key_mask_as_b_t_equals_b_1_1_t():
    q, k, v = qkv(11)
    mask = padding(11)  # (B, 1, 1, T)
    a = sliding_window_attention(q, k, v, 3, key_mask=mask)
    b = sliding_window_attention(q, k, v, 3, key_mask=mask[:, 0, 0, :])
    assert torch.equal(a, b)


@pytest.mark.parametrize("window", [9, 10, 50])
def test_window_covering_sequence_is_full_attention(window):
    q, k, v = qkv(10)
    full, _ = scaled_dot_product_attention(q, k, v, impl="math")
    assert_close(sliding_window_attention(q, k, v, window), full, atol=1e-5, rtol=1e-5)
    causal, _ = scaled_dot_product_attention(q, k, v, causal_mask(10), impl="math")
    assert_close(
        sliding_window_attention(q, k, v, window, causal=True), causal, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "key-mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize(("T", "window"), [(10, 3), (9, 1), (6, 0), (6, 8)])
def test_gradients_equal_dense(T, window, causal, masked):
    # Keys hidden at every 2nd / 3rd position: with window >= 1 no query's band is empty, so
    # the dense reference has no NaN rows to poison its gradients.
    pos = torch.arange(T)
    key_mask = torch.stack([pos % 2 == 0, pos % 3 != 1]) if masked and window > 0 else None
    q, k, v = qkv(T, requires_grad=True)
    grad_out = torch.randn(B, H, T, DH)

    out = sliding_window_attention(q, k, v, window, causal, key_mask)
    got = torch.autograd.grad(out, (q, k, v), grad_out)
    km = None if key_mask is None else key_mask[:, None, None, :]
    ref = reference(q, k, v, window, causal, km)
    want = torch.autograd.grad(ref, (q, k, v), grad_out)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dropout_p", [0.0, 0.5])
def test_causal_sees_neither_future_nor_beyond_window(dropout_p):
    T, window, i = 20, 4, 9
    q, k, v = qkv(T)

    def run(k, v):
        torch.manual_seed(1)  # same dropout pattern in every call
        return sliding_window_attention(q, k, v, window, causal=True, dropout_p=dropout_p)[:, :, i]

    base = run(k, v)
    outside = torch.ones(T, 1, dtype=torch.bool)
    outside[i - window : i + 1] = False  # keys i-w..i are the band; the rest must not matter
    k2 = torch.where(outside, torch.randn_like(k) * 100, k)
    v2 = torch.where(outside, torch.randn_like(v) * 100, v)
    assert torch.equal(run(k2, v2), base)

    # ... while the oldest key still inside the window does matter.
    v3 = v.clone()
    v3[:, :, i - window] += 1.0
    assert not torch.allclose(run(k, v3), base)


def test_dropout_changes_output_only_when_enabled():
    q, k, v = qkv(12)
    plain = sliding_window_attention(q, k, v, 3)
    assert torch.equal(sliding_window_attention(q, k, v, 3, dropout_p=0.0), plain)
    assert not torch.allclose(sliding_window_attention(q, k, v, 3, dropout_p=0.5), plain)


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_query_with_no_allowed_key_outputs_zeros_not_nan():
    T, window = 12, 2
    key_mask = torch.ones(B, T, dtype=torch.bool)
    key_mask[0, 4:9] = False  # query 6 of batch 0: keys 4..8 all hidden
    q, k, v = qkv(T, requires_grad=True)
    # No NaN anywhere, not even in an intermediate gradient (anomaly mode raises on one).
    with torch.autograd.detect_anomaly(check_nan=True):
        out = sliding_window_attention(q, k, v, window, key_mask=key_mask)
        out.sum().backward()
    assert torch.equal(out[0, :, 6], torch.zeros(H, DH))
    assert not torch.equal(out[0, :, 5], torch.zeros(H, DH))  # key 3 still in its band
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[0, :, 6], torch.zeros(H, DH))
    # Every other row matches the dense reference.
    assert_close(
        out, reference(q, k, v, window, False, key_mask[:, None, None, :]), atol=1e-5, rtol=1e-5
    )


def test_bf16_matches_fp32_reference():
    q, k, v = qkv(40, dtype=torch.bfloat16)
    out = sliding_window_attention(q, k, v, 6, causal=True)
    assert out.dtype == torch.bfloat16
    ref = reference(q.float(), k.float(), v.float(), 6, True)
    assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


class MaxNumel(TorchDispatchMode):
    """Records the largest tensor any aten op produces (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def test_memory_is_linear_in_t():
    T, window = 1024, 32
    q, k, v = (torch.randn(1, 1, T, 16, requires_grad=True) for _ in range(3))
    with MaxNumel() as rec:
        sliding_window_attention(q, k, v, window).sum().backward()
    assert rec.max_numel <= 3 * T * window + T  # (N, b, 3b) scores: 3·T·w, vs T² = 32·T·w
    # The recorder does see a (T, T) tensor when one is made (so the bound above can fail).
    with MaxNumel() as dense:
        scaled_dot_product_attention(q, k, v, band_mask(T, window), impl="math")
    assert dense.max_numel >= T * T


@pytest.mark.parametrize("fn", [sliding_window_attention, band_mask])
def test_negative_window_raises(fn):
    with pytest.raises(ValueError, match="window"):
        if fn is band_mask:
            band_mask(5, -1)
        else:
            q, k, v = qkv(5)
            sliding_window_attention(q, k, v, window=-1)
