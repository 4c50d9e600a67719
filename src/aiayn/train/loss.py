"""Label-smoothed cross-entropy (§5.4) that ignores padding."""

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
    lprobs = logits.float().log_softmax(dim=-1)  # (B, T, V)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, T)
    smooth = -lprobs.mean(dim=-1)  # (B, T): cross-entropy against the uniform distribution
    real = target != pad_id  # (B, T)
    loss = ((1.0 - epsilon) * nll + epsilon * smooth).masked_fill(~real, 0.0).sum()
    nll_sum = nll.masked_fill(~real, 0.0).sum().detach()
    return LossOutput(loss, nll_sum, int(real.sum()))
