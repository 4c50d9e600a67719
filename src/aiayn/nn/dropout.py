"""Dropout (Srivastava et al. 2014), the paper's only regulariser besides label smoothing (§5.4).

In training, each element is zeroed with probability p and the survivors are scaled by
1 / (1 − p), so the expected output equals the input; in evaluation it is the identity.

Why not `torch.nn.Dropout` on a CPU: torch draws the CPU mask with `bernoulli_`, one random
number per element turned into a float and compared with p. On the Multi30k model's bf16
training step those masks were a quarter of the step's time (docs/benchmarks.md). Here each
64-bit draw of the same generator gives four independent 16-bit integers, and an element is
kept when its integer is at least round(p · 2¹⁶): the same Bernoulli mask from half the
generator's output and integer compares, with p rounded to a multiple of 1/65,536 and the
scale set from that rounded p, so the expectation stays exact. Masks come from torch's
default generator, so `torch.manual_seed` and saved RNG states reproduce them. On other
devices (CUDA's fused Philox kernel is already fast) this is `F.dropout`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEVELS = 1 << 16  # a 16-bit draw takes one of 65,536 values


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element of `x` with probability `p`, scale the rest by 1 / (1 − p).

    Shape: any -> the same. Gradients flow through the kept elements with the same scale.
    """
    _check_probability(p)
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    drop = round(p * _LEVELS)  # an element is dropped when its draw is among the lowest `drop`
    if drop >= _LEVELS:
        return x * 0.0  # p rounds to 1: everything dropped (and no 1 / 0 scale)
    n = x.numel()
    # Full-range 64-bit draws (from=int64 min, to=None); plain random_() would leave the top
    # bit 0, and with it the sign of every fourth 16-bit lane.
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    draws = bits.view(torch.int16)[:n].view(x.shape)  # uniform on [-32768, 32767]
    keep = draws >= drop - _LEVELS // 2  # P(keep) = (65536 - drop) / 65536
    scale = _LEVELS / (_LEVELS - drop)  # 1 / (1 - p) for the rounded p: E[output] = x exactly
    # Scaling after masking rounds each element once, in x's dtype; a bf16 copy of the scale
    # would round 1 / (1 - p) itself and bias every element the same way.
    return (x * keep).mul_(scale)


class Dropout(nn.Module):
    """`torch.nn.Dropout` with a cheaper mask on CPU (see the module docstring)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        _check_probability(p)  # at construction, not at the first forward
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Shape: any -> the same."""
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


__all__ = ["Dropout", "dropout"]
