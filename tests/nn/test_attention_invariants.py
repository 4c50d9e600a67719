"""Attention behaviour beyond "math == sdpa": what a query can see, what padding, dropout,
positional schemes, defaults and devices do. Tiny tensors; every test runs in milliseconds."""

import pytest
import torch
from torch.testing import assert_close

from aiayn.nn.attention import MultiHeadAttention, pick_impl, scaled_dot_product_attention
from aiayn.nn.kv_cache import KVCache
from aiayn.nn.masks import causal_mask, padding_mask
from aiayn.nn.positional import PositionalEncoding, RotaryPositionalEncoding

D, HEADS = 16, 2


class Alibi(PositionalEncoding):
    """A relative scheme acting through `score_bias` (ALiBi's form): -slope_h · |i - j|, with
    query i at absolute position offset + i. Built in q's dtype, on q's device."""

    def __init__(self, slopes: list[float]) -> None:
        super().__init__()
        self.slopes = torch.tensor(slopes)

    def score_bias(self, q, k_len, offset=0):
        q_pos = torch.arange(offset, offset + q.shape[-2], device=q.device)
        k_pos = torch.arange(k_len, device=q.device)
        distance = (q_pos[:, None] - k_pos[None, :]).abs().to(q.dtype)  # (T, S)
        return -self.slopes.to(q)[:, None, None] * distance  # (H, T, S)


# --- what a query may see ----------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_a_causal_query_never_sees_the_future(impl, is_causal):
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    mask = None if is_causal else causal_mask(5)
    out, _ = scaled_dot_product_attention(q, k, v, mask, impl=impl, is_causal=is_causal)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:], v2[:, :, 3:] = torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4)
    out2, _ = scaled_dot_product_attention(q, k2, v2, mask, impl=impl, is_causal=is_causal)
    assert_close(out2[:, :, :3], out[:, :, :3])  # positions 0..2 never saw keys 3, 4
    assert not torch.allclose(out2[:, :, 3:], out[:, :, 3:])


@pytest.mark.parametrize("impl", ["math", "sdpa"])
def test_padded_keys_do_not_change_real_positions(impl):
    mha = MultiHeadAttention(D, HEADS, impl=impl).eval()
    x, memory = torch.randn(1, 3, D), torch.randn(1, 4, D)
    alone, _ = mha(x, memory)
    padded = torch.cat([memory, torch.randn(1, 3, D)], dim=1)  # 3 padding keys of any value
    mask = padding_mask(torch.tensor([[5, 5, 5, 5, 0, 0, 0]]), 0)
    with_pad, _ = mha(x, padded, mask=mask)
    assert_close(with_pad, alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "math", "sdpa"])
def test_is_causal_through_the_module_equals_the_causal_mask(impl):
    mha = MultiHeadAttention(D, HEADS, impl=impl).eval()
    x = torch.randn(2, 5, D)
    causal, _ = mha(x, is_causal=True)
    assert_close(causal, mha(x, mask=causal_mask(5))[0], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(causal, mha(x)[0])


@pytest.mark.parametrize("impl", ["math", "sdpa"])
def test_is_causal_keeps_a_score_bias(impl):
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    bias = torch.randn(1, 2, 4, 4)
    got, _ = scaled_dot_product_attention(q, k, v, bias=bias, impl=impl, is_causal=True)
    want, _ = scaled_dot_product_attention(q, k, v, causal_mask(4), bias, impl="math")
    assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_a_bias_alone_reaches_the_fused_kernel():
    q, k, v = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    bias = torch.randn(1, 2, 3, 5)
    fast, _ = scaled_dot_product_attention(q, k, v, bias=bias, impl="sdpa")
    ref, _ = scaled_dot_product_attention(q, k, v, bias=bias, impl="math")
    assert_close(fast, ref, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(fast, scaled_dot_product_attention(q, k, v, impl="sdpa")[0])


def test_weights_only_when_asked():
    q, k, v = (torch.randn(1, 2, 3, 4) for _ in range(3))
    for impl in ("math", "sdpa", "auto"):
        assert scaled_dot_product_attention(q, k, v, impl=impl)[1] is None
    mha = MultiHeadAttention(D, HEADS, impl="math").eval()
    out, weights = mha(torch.randn(1, 3, D))
    assert weights is None and out.shape == (1, 3, D)


def test_attend_is_full_attention_unless_told_causal():
    """A caller of `attend` that does not pass is_causal (a variant written before it) gets full
    attention, not a causal one."""
    mha = MultiHeadAttention(D, HEADS, impl="math").eval()
    q, k, v = torch.randn(1, HEADS, 2, 8), torch.randn(1, HEADS, 5, 8), torch.randn(1, HEADS, 5, 8)
    out, _ = mha.attend(q, k, v, None, None, 0.0, 0, False, False)
    assert_close(out, scaled_dot_product_attention(q, k, v, impl="math")[0])


# --- dropout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_attention_dropout_applies_on_every_path(impl, is_causal):
    q, k, v = (torch.randn(2, 2, 6, 8) for _ in range(3))
    plain, _ = scaled_dot_product_attention(q, k, v, impl=impl, is_causal=is_causal)
    again, _ = scaled_dot_product_attention(q, k, v, impl=impl, is_causal=is_causal)
    dropped, _ = scaled_dot_product_attention(
        q, k, v, dropout_p=0.5, impl=impl, is_causal=is_causal
    )
    assert torch.equal(plain, again)
    assert not torch.allclose(dropped, plain)


def test_module_dropout_only_in_training_and_off_by_default():
    x = torch.randn(2, 4, D)
    noisy = MultiHeadAttention(D, HEADS, dropout=0.5)
    clean = MultiHeadAttention(D, HEADS)  # default: no attention dropout
    clean.load_state_dict(noisy.state_dict())
    assert noisy.training and clean.training  # a fresh module trains
    assert torch.equal(clean(x)[0], clean(x)[0])  # default dropout 0: deterministic in training
    assert_close(clean(x)[0], clean.eval()(x)[0])
    reference = clean(x)[0]  # eval mode
    assert not torch.allclose(noisy(x)[0], reference)  # training: dropped
    assert not torch.equal(noisy(x)[0], noisy(x)[0])  # fresh masks each call
    noisy.eval()
    assert torch.equal(noisy(x)[0], reference)  # evaluation: the identity


# --- construction --------------------------------------------------------------------------------


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_without_bias_zero_values_give_zero_outputs():
    mha = MultiHeadAttention(D, HEADS, bias=False).eval()
    assert not any(name.endswith("bias") for name, _ in mha.named_parameters())
    # V = 0·W_V = 0 and 0·W_O = 0: whatever the queries attend to, the output is 0
    out, _ = mha(torch.randn(1, 3, D), torch.zeros(1, 4, D))
    assert torch.equal(out, torch.zeros(1, 3, D))


# --- positional schemes inside attention ---------------------------------------------------------


def test_a_score_bias_scheme_reaches_the_scores():
    """With a very steep distance penalty each query attends to its own position only: a
    token's output no longer depends on its neighbours."""
    mha = MultiHeadAttention(D, HEADS).eval()
    steep = Alibi([1e4, 1e4])
    x = torch.randn(2, 5, D)
    out, _ = mha(x, positional=steep)
    for i in range(5):
        alone, _ = mha(x[:, i : i + 1], positional=steep)
        assert_close(out[:, i], alone[:, 0], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(out, mha(x)[0])


@pytest.mark.parametrize("scheme", ["rope", "alibi"])
def test_cached_decoding_equals_the_whole_sequence(scheme):
    """Step-by-step decoding with a KV cache gives each new query its absolute position (the
    cache offset) and the full key length: the same outputs as one causal pass."""
    positional = RotaryPositionalEncoding(D // HEADS) if scheme == "rope" else Alibi([0.5, 0.25])
    mha = MultiHeadAttention(D, HEADS).eval()
    x = torch.randn(2, 6, D)
    whole, _ = mha(x, mask=causal_mask(6), positional=positional)
    cache = KVCache()
    outs = [mha(x[:, :3], mask=causal_mask(3), cache=cache, positional=positional)[0]]
    for t in range(3, 6):
        outs.append(mha(x[:, t : t + 1], cache=cache, positional=positional)[0])
    assert_close(torch.cat(outs, dim=1), whole, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(whole, mha(x, mask=causal_mask(6))[0])  # the scheme matters


# --- devices -------------------------------------------------------------------------------------


def test_off_the_cpu_auto_is_always_the_fused_kernel():
    # "meta" stands in for a GPU; on the CPU these three would take the math path.
    meta = torch.device("meta")
    for q in (
        torch.empty(2, 3, 4, 8, device=meta, dtype=torch.bfloat16).requires_grad_(),
        torch.empty(2, 3, 1, 8, device=meta),
        torch.empty(2, 3, 4, 8, device=meta),
    ):
        assert pick_impl(q) == "sdpa"


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_the_causal_mask_is_built_on_the_inputs_device(impl, need_weights):
    q = torch.empty(1, 2, 3, 4, device="meta")
    out, _ = scaled_dot_product_attention(
        q, q, q, impl=impl, need_weights=need_weights, is_causal=True
    )
    assert out.device == q.device and out.shape == q.shape
