"""SlidingWindowAttention(window=w): blocked, dense-with-weights and cached paths all equal dense
attention with `band_mask` ∧ key padding, a query never sees keys outside its band, and a
window covering the sequence is `MultiHeadAttention` on the same weights."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from aiayn.config import LayerConfig
from aiayn.nn.attention import MultiHeadAttention, scaled_dot_product_attention
from aiayn.nn.block import Block
from aiayn.nn.kv_cache import KVCache, StaticKV
from aiayn.nn.masks import causal_mask, combine, lengths_mask
from aiayn.nn.sliding_window import SlidingWindowAttention, band_mask

B, T, D, HEADS = 2, 9, 16, 2


def windowed(window, causal, impl="math"):
    return SlidingWindowAttention(D, HEADS, impl=impl, window=window, causal=causal).eval()


def dense_reference(mha, x, mask):
    """The same projections through `scaled_dot_product_attention` (math) with a dense mask."""
    q, k, v = (mha.split_heads(w(x)) for w in (mha.w_q, mha.w_k, mha.w_v))
    out, weights = scaled_dot_product_attention(q, k, v, mask, impl="math", need_weights=True)
    return mha.w_o(mha.merge_heads(out)), weights


def key_padding():
    """(B, 1, 1, T): row 0 unpadded, row 1 with 2 padded keys (every band keeps a real key
    for window >= 2, so the dense reference has no empty row there)."""
    return lengths_mask(torch.tensor([T, T - 2]), T)


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("window", [2, 3, 4, 8])
def test_window_path_equals_dense_band_attention(window, causal, impl):
    mha = windowed(window, causal, impl)
    x = torch.randn(B, T, D)
    pad = key_padding()
    ours, no_weights = mha(x, mask=pad)
    assert no_weights is None
    ref, _ = dense_reference(mha, x, combine(band_mask(T, window, causal), pad))
    assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_need_weights_returns_the_band_weights(causal):
    mha = windowed(2, causal)
    x = torch.randn(B, T, D)
    pad = key_padding()
    fast, _ = mha(x, mask=pad)
    out, w = mha(x, mask=pad, need_weights=True)
    assert w.shape == (B, HEADS, T, T)
    allowed = combine(band_mask(T, 2, causal), pad).expand(B, HEADS, T, T)
    assert (w[~allowed] == 0).all() and (w[allowed] > 0).all()
    assert_close(w.sum(-1), torch.ones(B, HEADS, T))
    assert_close(out, fast, atol=1e-5, rtol=1e-5)
    _, ref_w = dense_reference(mha, x, allowed)
    assert_close(w, ref_w, atol=1e-6, rtol=1e-5)


def test_window_covering_the_sequence_is_full_attention():
    full = MultiHeadAttention(D, HEADS, impl="math").eval()
    x = torch.randn(B, T, D)
    pad = key_padding()
    for causal in (False, True):
        mha = windowed(T - 1, causal)
        mha.load_state_dict(full.state_dict())
        expected, _ = full(x, mask=combine(pad, causal_mask(T) if causal else None))
        assert_close(mha(x, mask=pad)[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padded", [False, True], ids=["no-pad", "pad"])
@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("window", [T - 1, T, 4 * T])
def test_wide_window_equals_multi_head_attention(window, causal, impl, padded):
    """A window >= T - 1 hides no key: `SlidingWindowAttention` on `MultiHeadAttention`'s
    weights equals it with the causal mask (causal) or no mask (bidirectional), on the blocked
    path, the dense path that returns weights, and the cached path."""
    full = MultiHeadAttention(D, HEADS, impl=impl).eval()
    local = windowed(window, causal, impl)
    local.load_state_dict(full.state_dict())  # same names, no extra parameters
    x = torch.randn(B, T, D)
    pad = key_padding() if padded else None
    full_mask = combine(pad, causal_mask(T) if causal else None)

    expected, expected_w = full(x, mask=full_mask, need_weights=True)
    assert_close(local(x, mask=pad)[0], expected, atol=1e-5, rtol=1e-5)
    out, w = local(x, mask=pad, need_weights=True)
    assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert_close(w, expected_w, atol=1e-6, rtol=1e-5)

    if causal:  # incremental decoding: a prefix, one step, then a chunk reaching back to key 0
        caches, outs = (KVCache(), KVCache()), {"local": [], "full": []}
        for t, n in [(0, 3), (3, 1), (4, T - 4)]:
            mask = combine(None if pad is None else pad[..., : t + n], causal_mask(n, t + n))
            outs["local"].append(local(x[:, t : t + n], mask=mask, cache=caches[0])[0])
            outs["full"].append(full(x[:, t : t + n], mask=mask, cache=caches[1])[0])
        assert_close(torch.cat(outs["local"], 1), torch.cat(outs["full"], 1), atol=1e-5, rtol=1e-5)
        assert_close(torch.cat(outs["full"], 1), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_output_ignores_keys_outside_the_window(causal):
    window, i = 2, 4
    mha = windowed(window, causal)
    x = torch.randn(1, T, D)
    base, _ = mha(x)
    lo, hi = i - window, (i if causal else i + window)
    for j in range(T):
        changed = x.clone()
        changed[0, j] += torch.randn(D)
        out, _ = mha(changed)
        if lo <= j <= hi:
            assert not torch.allclose(out[0, i], base[0, i])
        else:
            assert_close(out[0, i], base[0, i], atol=0, rtol=0)


def test_empty_band_gives_zeros_not_nan_on_every_path():
    """Row 1 is padded from position 3 on: with window 1, padded queries 5.. see no real key."""
    mha = windowed(1, causal=False)
    x = torch.randn(B, T, D)
    pad = lengths_mask(torch.tensor([T, 3]), T)
    fast, _ = mha(x, mask=pad)
    dense, w = mha(x, mask=pad, need_weights=True)
    assert torch.isfinite(fast).all() and torch.isfinite(dense).all() and torch.isfinite(w).all()
    assert_close(fast, dense, atol=1e-5, rtol=1e-5)
    assert (w[1, :, 5:] == 0).all()


@pytest.mark.parametrize("chunks", [[1] * T, [3, 1, 4, 1]], ids=["steps", "chunks"])
@pytest.mark.parametrize("window", [1, 2, 5])
def test_cached_decoding_equals_whole_sequence(window, chunks):
    mha = windowed(window, causal=True)
    x = torch.randn(B, T, D)
    whole, _ = mha(x)
    cache, outs, t = KVCache(capacity=2), [], 0
    for n in chunks:
        mask = causal_mask(n, t + n) if n > 1 else None  # what the model passes
        out, _ = mha(x[:, t : t + n], mask=mask, cache=cache)
        outs.append(out)
        t += n
    assert_close(torch.cat(outs, dim=1), whole[:, :t], atol=1e-5, rtol=1e-5)


def test_cached_need_weights_cover_every_key_and_only_the_band():
    window = 2
    mha = windowed(window, causal=True)
    x = torch.randn(B, T, D)
    cache = KVCache()
    mha(x[:, :5], cache=cache)
    out, w = mha(x[:, 5:7], mask=causal_mask(2, 7), cache=cache, need_weights=True)
    assert w.shape == (B, HEADS, 2, 7)
    allowed = band_mask(7, window, causal=True)[5:7]  # queries 5, 6 over keys 0..6
    assert (w[..., ~allowed] == 0).all() and (w[..., allowed] > 0).all()
    assert_close(out, mha(x[:, :7])[0][:, 5:7], atol=1e-5, rtol=1e-5)


def test_wrong_masks_and_uses_raise():
    mha = windowed(2, causal=True)
    x = torch.randn(B, T, D)
    with pytest.raises(ValueError, match=r"key-padding mask.*\(B, 1, 1, T\)"):
        mha(x, mask=causal_mask(T))  # (T, T): the window supplies causality
    with pytest.raises(ValueError, match="key-padding mask"):
        mha(x, mask=combine(key_padding(), causal_mask(T)))  # (B, 1, T, T)
    with pytest.raises(ValueError, match="self-attention only"):
        mha(x, torch.randn(B, 4, D))
    with pytest.raises(ValueError, match="self-attention only"):
        mha(x, cache=StaticKV())
    with pytest.raises(ValueError, match="causal"):
        windowed(2, causal=False)(x, cache=KVCache())
    with pytest.raises(ValueError, match="window must be >= 0"):
        SlidingWindowAttention(D, HEADS, window=-1)
    with pytest.raises(ValueError, match="window must be an int"):
        SlidingWindowAttention(D, HEADS, window=None)
    with pytest.raises(TypeError, match="window"):
        MultiHeadAttention(D, HEADS, window=2)  # no switch: the variant is its own class
    with pytest.raises(ValueError, match="key-padding mask"):
        mha(x, mask=key_padding()[:, 0])  # (B, 1, T) broadcasts as (1, B, 1, T): batch as heads
    # one key mask (T,) for every row broadcasts to (B, 1, 1, T) and is accepted
    row = key_padding()[1, 0, 0]  # (T,)
    assert_close(mha(x, mask=row)[0], mha(x, mask=row.expand(B, 1, 1, T))[0])


def test_blocks_window_self_attention_only():
    spec = LayerConfig(d_model=D, n_heads=HEADS, d_ff=32, dropout=0.0, attention_window=3)
    enc, dec = Block(spec), Block(spec, causal=True, cross_attention=True)
    assert isinstance(enc.self_attn, SlidingWindowAttention)
    assert (enc.self_attn.window, enc.self_attn.causal) == (3, False)
    assert isinstance(dec.self_attn, SlidingWindowAttention)
    assert (dec.self_attn.window, dec.self_attn.causal) == (3, True)
    assert type(dec.cross_attn) is MultiHeadAttention
    plain = Block(LayerConfig(d_model=D, n_heads=HEADS, d_ff=32), causal=True, cross_attention=True)
    assert type(plain.self_attn) is MultiHeadAttention
    assert set(plain.state_dict()) == set(dec.state_dict())  # the window adds no parameters
