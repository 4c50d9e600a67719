"""Label-smoothed loss and R-Drop on values small enough to work out by hand (log 2 units)."""

import math

import torch
from torch.testing import assert_close

from aiayn.train.loss import label_smoothed_nll, r_drop_loss

LOG2 = math.log(2.0)
PAD = 2


def logits_of(*rows):
    """Logits whose softmax is each row of probabilities. Shape: (1, len(rows), V)."""
    return torch.tensor(rows).log()[None]


def test_smoothed_loss_by_hand_and_padding_is_ignored():
    # p = (1/2, 1/4, 1/4) at every position: -log p = (1, 2, 2)·log 2, mean 5/3·log 2.
    logits = logits_of([0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25])
    logits.requires_grad_()
    target = torch.tensor([[0, 1, PAD]])
    eps = 0.1
    out = label_smoothed_nll(logits, target, epsilon=eps, pad_id=PAD)
    # token 0: (1 - ε)·1 + ε·5/3, token 1: (1 - ε)·2 + ε·5/3 (log 2 units); the pad: nothing
    want = ((1 - eps) * 1 + eps * 5 / 3 + (1 - eps) * 2 + eps * 5 / 3) * LOG2
    assert_close(out.loss, torch.tensor(want))
    assert_close(out.nll, torch.tensor(3 * LOG2))
    assert out.n_tokens == 2
    assert out.loss.requires_grad and not out.nll.requires_grad  # nll is for reporting only


def test_smoothed_loss_is_cross_entropy_against_the_smoothed_target():
    """(1 − ε) on the reference plus ε spread over all V tokens, the reference included."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 4, 3], [0, 2, 2]])  # pad_id 2: two padded positions
    eps = 0.2
    q = torch.full((2, 3, 5), eps / 5).scatter_add(
        -1, target[..., None], torch.full((2, 3, 1), 1 - eps)
    )
    per_token = -(q * logits.log_softmax(-1)).sum(-1)
    real = target != PAD
    out = label_smoothed_nll(logits, target, eps, PAD)
    assert_close(out.loss, per_token[real].sum())
    assert out.n_tokens == 4


def test_loss_is_computed_in_fp32_from_half_precision_logits():
    logits = torch.randn(2, 3, 7)
    target = torch.tensor([[1, 2, 3], [4, 5, 6]])
    ref = label_smoothed_nll(logits.bfloat16().float(), target, 0.1, 0)
    out = label_smoothed_nll(logits.bfloat16(), target, 0.1, 0)
    assert out.loss.dtype == torch.float32
    assert_close(out.loss, ref.loss)


def test_r_drop_by_hand():
    # Pass a: (1/2, 1/4, 1/4), pass b: (1/4, 1/2, 1/4) at one real position, target 0.
    # KL(a‖b) + KL(b‖a) = Σ (a − b)(log a − log b) = (1/4 + 1/4)·log 2.
    a = logits_of([0.5, 0.25, 0.25], [0.2, 0.3, 0.5])
    b = logits_of([0.25, 0.5, 0.25], [0.6, 0.1, 0.3])
    target = torch.tensor([[0, PAD]])
    alpha, eps = 4.0, 0.0
    out = r_drop_loss(a, b, target, eps, PAD, alpha)
    nll_a, nll_b = 1 * LOG2, 2 * LOG2  # -log 1/2, -log 1/4
    want = 0.5 * (nll_a + nll_b) + alpha / 4 * 0.5 * LOG2
    assert_close(out.loss, torch.tensor(want))
    assert_close(out.nll, torch.tensor(0.5 * (nll_a + nll_b)))
    assert out.n_tokens == 1
