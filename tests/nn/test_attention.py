"""Scaled dot-product and multi-head attention: reference == fast path == torch."""

import math

import pytest
import torch
from torch.testing import assert_close

from aiayn.nn.attention import MultiHeadAttention, pick_impl, scaled_dot_product_attention
from aiayn.nn.kv_cache import KVCache, StaticKV
from aiayn.nn.masks import causal_mask, combine, padding_mask, to_torch_polarity

B, H, T, S, DH = 3, 4, 5, 7, 8


def qkv():
    return torch.randn(B, H, T, DH), torch.randn(B, H, S, DH), torch.randn(B, H, S, DH)


def some_masks():
    ids = torch.tensor([[4] * 7, [4] * 5 + [0] * 2, [4] * 2 + [0] * 5])
    pad = padding_mask(ids, 0)  # (B, 1, 1, S)
    return {
        "none": None,
        "padding": pad,
        "causal": causal_mask(T, S),
        "padding+causal": combine(pad, causal_mask(T, S)),
    }


@pytest.mark.parametrize("name", ["none", "padding", "causal", "padding+causal"])
def test_math_path_equals_sdpa(name):
    q, k, v = qkv()
    mask = some_masks()[name]
    ref, weights = scaled_dot_product_attention(q, k, v, mask, impl="math", need_weights=True)
    fast, none = scaled_dot_product_attention(q, k, v, mask, impl="sdpa")
    assert none is None and weights.shape == (B, H, T, S)
    assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_math_path_equals_sdpa_with_bias_and_mask():
    q, k, v = qkv()
    bias = torch.randn(1, H, T, S)
    mask = some_masks()["padding+causal"]
    ref, _ = scaled_dot_product_attention(q, k, v, mask, bias, impl="math")
    fast, _ = scaled_dot_product_attention(q, k, v, mask, bias, impl="sdpa")
    assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_math_path_is_the_equation():
    q, k, v = qkv()
    out, w = scaled_dot_product_attention(q, k, v, impl="math", need_weights=True)
    # one element by hand: softmax over keys of q·k / sqrt(d_k)
    scores = torch.tensor([q[1, 2, 3] @ k[1, 2, j] / math.sqrt(DH) for j in range(S)])
    expected_w = scores.softmax(0)
    assert_close(w[1, 2, 3], expected_w)
    assert_close(out[1, 2, 3], expected_w @ v[1, 2])


def test_weights_rows_sum_to_one_and_masked_keys_get_exactly_zero():
    q, k, v = qkv()
    mask = some_masks()["padding+causal"].expand(B, H, T, S)
    _, w = scaled_dot_product_attention(q, k, v, mask, impl="math", need_weights=True)
    assert_close(w.sum(-1), torch.ones(B, H, T))
    assert (w[~mask] == 0).all()  # exactly zero, not merely small
    assert (w[mask] > 0).all()


def test_attention_dropout_only_when_asked():
    q, k, v = qkv()
    a, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.0, impl="math")
    b, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.0, impl="math")
    c, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, impl="math")
    assert torch.equal(a, b) and not torch.allclose(a, c)


def _torch_mha_like(mha: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.w_q.weight, mha.w_k.weight, mha.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.w_q.bias, mha.w_k.bias, mha.w_v.bias]))
        ref.out_proj.weight.copy_(mha.w_o.weight)
        ref.out_proj.bias.copy_(mha.w_o.bias)
    return ref.eval()


@pytest.mark.parametrize("impl", ["math", "sdpa", "auto"])
def test_multi_head_attention_equals_torch(impl):
    D, heads = 32, 4
    mha = MultiHeadAttention(D, heads, impl=impl).eval()
    ref = _torch_mha_like(mha)
    x = torch.randn(2, 6, D)
    memory = torch.randn(2, 9, D)
    src_ids = torch.tensor([[4] * 9, [4] * 4 + [0] * 5])
    key_mask = padding_mask(src_ids, 0)  # (B, 1, 1, S), True = may attend

    # cross-attention with padded keys: torch wants True = ignore, shape (B, S)
    ours, our_w = mha(x, memory, mask=key_mask, need_weights=True)
    theirs, their_w = ref(
        x, memory, memory, key_padding_mask=to_torch_polarity(key_mask[:, 0, 0]),
        average_attn_weights=False,
    )  # fmt: skip
    assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert_close(our_w, their_w, atol=1e-6, rtol=1e-4)

    # causal self-attention
    ours, _ = mha(x, mask=causal_mask(6))
    theirs, _ = ref(x, x, x, attn_mask=to_torch_polarity(causal_mask(6)))
    assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_state_dict_names_the_four_projections():
    keys = set(MultiHeadAttention(16, 2).state_dict())
    for w in ("w_q", "w_k", "w_v", "w_o"):
        assert {f"{w}.weight", f"{w}.bias"} <= keys


def test_heads_are_independent_column_blocks():
    """Zeroing head 0's slice of W_V changes only head 0's output block (before W_O)."""
    D, heads = 16, 4
    mha = MultiHeadAttention(D, heads, impl="math").eval()
    x = torch.randn(1, 5, D)
    captured = {}
    mha.w_o.register_forward_hook(lambda m, inp, out: captured.setdefault("concat", inp[0]))
    mha(x)
    before = captured.pop("concat")
    with torch.no_grad():
        mha.w_v.weight[: D // heads] = 0
        mha.w_v.bias[: D // heads] = 0
    mha(x)
    after = captured.pop("concat")
    dh = D // heads
    assert torch.all(after[..., :dh] == 0)
    assert_close(after[..., dh:], before[..., dh:])


def test_attend_is_the_one_step_a_variant_replaces():
    """forward gives `attend` the heads, the cache offset and whether K/V hold past steps, and
    merges and projects whatever it returns (how `SlidingWindowAttention` plugs in)."""
    D, heads, dh = 16, 2, 8
    seen = []

    class Spy(MultiHeadAttention):
        def attend(
            self, q, k, v, mask, bias, dropout_p, offset, cached, need_weights, is_causal=False
        ):
            seen.append((tuple(q.shape), tuple(k.shape), offset, cached))
            return super().attend(
                q, k, v, mask, bias, dropout_p, offset, cached, need_weights, is_causal
            )

    class Zeros(MultiHeadAttention):
        def attend(
            self, q, k, v, mask, bias, dropout_p, offset, cached, need_weights, is_causal=False
        ):
            return torch.zeros_like(q), None

    mha = MultiHeadAttention(D, heads).eval()
    spy, zeros = Spy(D, heads).eval(), Zeros(D, heads).eval()
    spy.load_state_dict(mha.state_dict())
    zeros.load_state_dict(mha.state_dict())
    x, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    assert torch.equal(spy(x)[0], mha(x)[0])
    assert torch.equal(zeros(x)[0], mha.w_o.bias.expand(2, 5, D))  # nothing bypasses attend

    cache, static = KVCache(), StaticKV()
    spy(x[:, :3], mask=causal_mask(3), cache=cache)
    spy(x[:, 3:4], cache=cache)
    spy(x, memory, cache=static)
    spy(x[:, :1], cache=static)
    assert seen == [
        ((2, heads, 5, dh), (2, heads, 5, dh), 0, False),  # self-attention, no cache
        ((2, heads, 3, dh), (2, heads, 3, dh), 0, True),  # KVCache: a prefix of 3 ...
        ((2, heads, 1, dh), (2, heads, 4, dh), 3, True),  # ... then one step at position 3
        ((2, heads, 5, dh), (2, heads, 7, dh), 0, False),  # StaticKV: cross-attention
        ((2, heads, 1, dh), (2, heads, 7, dh), 0, False),  # ... reused
    ]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masking_is_safe_in_half_precision(dtype):
    """Masked scores get -inf, never a large finite constant like -1e9 that fp16 can't hold."""
    q, k, v = (t.to(dtype) for t in qkv())
    mask = some_masks()["padding+causal"].expand(B, H, T, S)
    out, w = scaled_dot_product_attention(q, k, v, mask, impl="math", need_weights=True)
    assert torch.isfinite(out).all()
    assert (w[~mask] == 0).all()
    fast, _ = scaled_dot_product_attention(q, k, v, mask, impl="sdpa")
    assert_close(fast, out, atol=2e-2, rtol=2e-2)


def test_auto_takes_math_for_cpu_half_precision_training_and_single_query_decoding():
    q = torch.randn(2, 3, 4, 8)
    assert pick_impl(q) == "sdpa"  # fp32, whole sequence
    assert pick_impl(q.bfloat16()) == "sdpa"  # half precision, inference
    assert pick_impl(q.bfloat16().requires_grad_()) == "math"  # half precision, training
    assert pick_impl(q.clone().requires_grad_()) == "sdpa"  # fp32 training: SDPA is as fast
    step = torch.randn(2, 3, 1, 8)  # one new query per decoding step
    assert pick_impl(step) == "math"
    assert pick_impl(step.requires_grad_()) == "sdpa"


@pytest.mark.parametrize("impl", ["auto", "sdpa", "math"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_is_causal_equals_the_causal_mask(impl, need_weights):
    q, k, v = (torch.randn(2, 3, 6, 8) for _ in range(3))
    got, got_w = scaled_dot_product_attention(
        q, k, v, impl=impl, need_weights=need_weights, is_causal=True
    )
    want, want_w = scaled_dot_product_attention(
        q, k, v, causal_mask(6, 6), impl="math", need_weights=True
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    if need_weights:
        torch.testing.assert_close(got_w, want_w)
    # with another mask too: both apply
    pad = torch.tensor([True] * 5 + [False])[None, None, None, :]
    got, _ = scaled_dot_product_attention(q, k, v, pad, impl=impl, is_causal=True)
    want, _ = scaled_dot_product_attention(q, k, v, pad & causal_mask(6, 6), impl="math")
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="as many queries as keys"):
        scaled_dot_product_attention(q, k[:, :, :4], v[:, :, :4], is_causal=True)


@pytest.mark.parametrize("impl", ["math", "sdpa"])
def test_narrow_keys_attend_in_d_k_dimensions_scaled_by_root_d_k(impl):
    """Table 3 row B: queries and keys of width d_k per head, values of d_model / h."""
    torch.manual_seed(0)
    D, heads, d_k = 16, 2, 3
    mha = MultiHeadAttention(D, heads, impl=impl, key_dim=d_k).eval()
    assert mha.w_q.weight.shape == mha.w_k.weight.shape == (heads * d_k, D)
    assert mha.w_v.weight.shape == (D, D)
    x = torch.randn(2, 5, D)
    out, _ = mha(x)
    q = mha.w_q(x).view(2, 5, heads, d_k).transpose(1, 2)  # (B, H, T, d_k)
    k = mha.w_k(x).view(2, 5, heads, d_k).transpose(1, 2)
    v = mha.w_v(x).view(2, 5, heads, D // heads).transpose(1, 2)  # (B, H, T, d_v)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(d_k)).softmax(-1)
    by_hand = mha.w_o((weights @ v).transpose(1, 2).reshape(2, 5, D))
    assert_close(out, by_hand, atol=1e-5, rtol=1e-5)
