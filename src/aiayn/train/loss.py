"""Label-smoothed cross-entropy (§5.4) that ignores padding, and R-Drop's consistency term."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class LossOutput(NamedTuple):
    loss: Tensor  # scalar: sum over real target tokens of the smoothed loss (what we minimise)
    nll: Tensor  # scalar: sum of −log p(target), for perplexity (detached)
    n_tokens: int  # real (non-padding) target tokens


def label_smoothed_nll(logits: Tensor, target: Tensor, epsilon: float, pad_id: int) -> LossOutput:
    """Smoothed loss = (1 − ε)·NLL + ε·(mean over the vocabulary of −log p), summed over tokens.

    The target distribution puts 1 − ε on the reference and spreads ε uniformly over all V
    tokens (as `F.cross_entropy(label_smoothing=ε)` does). It "hurts perplexity, as the model
    learns to be more unsure, but improves accuracy and BLEU" (§5.4).

    Shape: logits (B, T, V) any float dtype, target (B, T) long -> sums (scalars).
    Log-probabilities are computed in fp32 even under bf16 autocast.
    """
    return _smoothed_nll(logits.float().log_softmax(dim=-1), target, epsilon, pad_id)


def _smoothed_nll(lprobs: Tensor, target: Tensor, epsilon: float, pad_id: int) -> LossOutput:
    """`label_smoothed_nll` from log-probabilities (B, T, V) fp32."""
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, T)
    smooth = -lprobs.mean(dim=-1)  # (B, T): cross-entropy against the uniform distribution
    real = target != pad_id  # (B, T)
    loss = ((1.0 - epsilon) * nll + epsilon * smooth).masked_fill(~real, 0.0).sum()
    nll_sum = nll.masked_fill(~real, 0.0).sum().detach()
    return LossOutput(loss, nll_sum, int(real.sum()))


def r_drop_loss(
    logits_a: Tensor, logits_b: Tensor, target: Tensor, epsilon: float, pad_id: int, alpha: float
) -> LossOutput:
    """R-Drop (Liang et al., 2021): two passes of one batch under different dropout masks,
    label-smoothed loss on both, plus α times their symmetric KL divergence.

    loss = ½·(L_a + L_b) + (α/2)·½·(KL(p_a‖p_b) + KL(p_b‖p_a)), summed over real tokens: the
    paper's objective halved, so the cross-entropy part keeps the scale of one pass (same
    learning rate) and `alpha` keeps the paper's meaning (5 for IWSLT'14 De-En). The KL pulls
    the two sub-networks that dropout samples towards the same prediction, a regulariser
    against over-fitting small corpora. `nll` is the mean of the two passes'.

    Shape: logits_a, logits_b (B, T, V), target (B, T) long -> sums (scalars).
    """
    lp_a = logits_a.float().log_softmax(dim=-1)  # (B, T, V)
    lp_b = logits_b.float().log_softmax(dim=-1)
    a = _smoothed_nll(lp_a, target, epsilon, pad_id)
    b = _smoothed_nll(lp_b, target, epsilon, pad_id)
    # KL(p‖q) + KL(q‖p) = Σ_v (p − q)(log p − log q), one pass over the vocabulary.
    sym_kl = ((lp_a.exp() - lp_b.exp()) * (lp_a - lp_b)).sum(dim=-1)  # (B, T)
    sym_kl = sym_kl.masked_fill(target == pad_id, 0.0).sum()
    loss = 0.5 * (a.loss + b.loss) + 0.25 * alpha * sym_kl
    return LossOutput(loss, 0.5 * (a.nll + b.nll), a.n_tokens)
