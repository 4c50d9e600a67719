"""aiayn's dropout: torch's Bernoulli mask semantics from a cheaper CPU draw."""

import math

import pytest
import torch

from aiayn.nn import Dropout, dropout

N = 1 << 20  # enough elements that a keep rate is known to ±0.25% (5 standard deviations)


def _tolerance(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keeps_each_element_with_probability_one_minus_p_and_scales_to_keep_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(N)
    y = dropout(x, p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < _tolerance(p, N)
    scale = y[kept].unique()
    assert scale.numel() == 1  # every survivor is scaled by the same factor
    assert scale.item() == pytest.approx(1 / (1 - p), rel=1e-4)
    assert y.mean().item() == pytest.approx(1.0, abs=5 * _tolerance(p, N) / (1 - p))


def test_every_16_bit_lane_of_a_draw_is_uniform():
    # Four mask elements come from one 64-bit draw; a draw whose top bit were always 0
    # (what plain random_() gives) would keep every fourth element far too often.
    torch.manual_seed(1)
    p = 0.5
    kept = dropout(torch.ones(N), p) != 0
    lanes = kept.view(-1, 4).float().mean(dim=0)  # (4,): keep rate of elements i % 4 == lane
    tol = _tolerance(p, N // 4)
    assert all(abs(rate - (1 - p)) < tol for rate in lanes.tolist()), lanes


def test_neighbouring_elements_are_dropped_independently():
    torch.manual_seed(2)
    kept = (dropout(torch.ones(N), 0.5) != 0).float()
    for shift in (1, 2, 3, 4, 5):
        corr = torch.corrcoef(torch.stack([kept[:-shift], kept[shift:]]))[0, 1].item()
        assert abs(corr) < 5 / math.sqrt(N), (shift, corr)


def test_gradient_passes_through_the_forward_mask_with_the_same_scale():
    torch.manual_seed(3)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.3)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    factor = torch.where(y != 0, y / x, 0.0).detach()  # the mask times its scale, per element
    torch.testing.assert_close(x.grad, upstream * factor)
    assert 0 < (factor == 0).float().mean() < 1


def test_the_same_seed_gives_the_same_mask_and_successive_calls_differ():
    x = torch.ones(4096)
    torch.manual_seed(4)
    a, b = dropout(x, 0.3), dropout(x, 0.3)
    torch.manual_seed(4)
    assert torch.equal(dropout(x, 0.3), a)
    assert not torch.equal(a, b)


def test_identity_in_evaluation_and_at_p_zero_zero_at_p_one():
    x = torch.randn(8, 5)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module = Dropout(0.3).eval()
    assert module(x) is x


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_rejects_a_probability_outside_zero_one(p):
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(torch.ones(3), p)


def test_keeps_dtype_shape_and_handles_non_contiguous_and_odd_sizes():
    torch.manual_seed(5)
    x = torch.randn(7, 13, 3, dtype=torch.bfloat16).transpose(0, 2)  # 273 elements, strided
    y = dropout(x, 0.25)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    kept = y != 0
    # each survivor is x · 4/3 rounded once to bf16 (not x times a bf16-rounded 4/3)
    assert torch.equal(y[kept], (x.float() * (4 / 3)).to(torch.bfloat16)[kept])


def test_the_model_uses_it_and_a_seeded_training_forward_is_reproducible():
    from aiayn.models import EncoderDecoder, presets

    cfg = presets.tiny(50, dropout=0.3)
    model = EncoderDecoder(cfg).train()
    assert any(isinstance(m, Dropout) for m in model.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    src, tgt = torch.randint(3, 50, (2, 6)), torch.randint(3, 50, (2, 5))
    torch.manual_seed(6)
    a = model(src, tgt)
    torch.manual_seed(6)
    assert torch.equal(model(src, tgt), a)
    assert not torch.equal(model(src, tgt), a)  # a new draw: new masks
