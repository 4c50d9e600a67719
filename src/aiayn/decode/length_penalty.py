"""GNMT's length penalty (Wu et al. 2016, §7, eq. 14), used by the paper's beam search (§6.1).

A sequence's log-probability only falls as tokens are added, so ranking hypotheses by raw
log-probability favours short outputs. GNMT divides by a penalty that grows with length:

    lp(Y)    = ((5 + |Y|) / 6) ** alpha
    score(Y) = log P(Y | X) / lp(Y)

alpha = 0 gives lp = 1 (raw log-probability); the paper uses alpha = 0.6 (§6.1).

|Y| counts every scored token: the output tokens plus the closing </s> when the hypothesis
ended with one (as fairseq does: the </s> probability is part of log P(Y | X), so its position
counts too). <s> is never counted. A hypothesis cut off at the length limit has no </s>, so
|Y| is its number of tokens.
"""

from __future__ import annotations

from torch import Tensor

#: §6.1: "beam search with a beam size of 4 and length penalty α = 0.6".
PAPER_ALPHA = 0.6


def length_penalty(length: Tensor | int, alpha: float = PAPER_ALPHA) -> Tensor | float:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha.

    Shape: length int or any-shape long/float tensor -> same shape (float).
    """
    return ((5 + length) / 6) ** alpha


def normalized_score(
    log_prob: Tensor | float, length: Tensor | int, alpha: float = PAPER_ALPHA
) -> Tensor | float:
    """log P(Y | X) / lp(Y): the score beam search ranks finished hypotheses by.

    Shape: log_prob and length broadcastable -> their broadcast shape.
    """
    return log_prob / length_penalty(length, alpha)


__all__ = ["PAPER_ALPHA", "length_penalty", "normalized_score"]
