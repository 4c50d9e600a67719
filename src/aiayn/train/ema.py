"""An exponential moving average (EMA) of the weights, kept beside training (Polyak averaging).

After every optimiser update

    ema ← d · ema + (1 − d) · θ

and the EMA, not the raw weights θ, is what validation scores and the model directory holds.
It does for every step what averaging the last K checkpoints (§6.1) does for K of them: it
smooths away the noise of the last updates. Not in the paper; fairseq (`--ema-decay`) and timm
(`ModelEmaV3`) keep one the same way.

The decay d is either fixed per update (`ema_decay`) or follows the time spent training
(`ema_minutes` = τ: d = exp(−Δt / τ) for an update that took Δt minutes), so that a time-boxed
recipe averages over the same minutes on a fast and a slow machine, as `valid_every_minutes`
does for checkpoints.
Either way it is capped by (1 + n) / (10 + n) after n updates (TensorFlow's
`ExponentialMovingAverage(num_updates=…)`): early on the EMA follows the model instead of
remembering its random initialisation.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class WeightEMA:
    """The moving average of `model`'s weights, held as a copy of the model (`module`), as timm's
    `ModelEmaV3` does: it validates, exports and saves like any model, tied weights tied."""

    def __init__(
        self, model: nn.Module, decay: float | None = None, minutes: float | None = None
    ) -> None:
        if (decay is None) == (minutes is None):
            raise ValueError("give the EMA a decay per update or a time constant in minutes")
        self.decay, self.minutes = decay, minutes
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0  # updates averaged so far (the warm-up cap's n)

    def decay_for(self, update_minutes: float) -> float:
        """The d of the next update, which took `update_minutes` (used with `minutes` only)."""
        d = self.decay if self.decay is not None else math.exp(-update_minutes / self.minutes)
        return min(d, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module, update_minutes: float = 0.0) -> None:
        """Fold in `model`'s weights after an update that took `update_minutes`."""
        d = self.decay_for(update_minutes)
        # parameters() lists a tied weight once, in the same order in the copy
        ema = list(self.module.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1.0 - d)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)  # buffers are not learnt: the model's are current
        self.updates += 1

    @torch.no_grad()
    def restart(self, model: nn.Module) -> None:
        """Start the average afresh from `model`'s current weights, in place (so a sharded EMA
        stays sharded: each rank copies its own shards)."""
        for mine, theirs in zip(self.module.parameters(), model.parameters(), strict=True):
            mine.copy_(theirs)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
        self.updates = 0
