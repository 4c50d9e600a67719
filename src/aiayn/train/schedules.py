"""Learning-rate schedules, as functions of the (1-based) optimiser step."""

from __future__ import annotations

import math

from aiayn.config import TrainConfig


def noam(step: int, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The paper's schedule (§5.3, eq. 3):

        lr = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)

    linear warm-up for `warmup` steps, then decay ∝ 1/√step; peak d_model^-0.5 · warmup^-0.5
    (7.0e-4 for base with 4000 warm-up steps).
    """
    step = max(step, 1)
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def inverse_sqrt(step: int, peak_lr: float, warmup: int) -> float:
    """fairseq's `inverse_sqrt`: linear warm-up to `peak_lr`, then peak_lr · √(warmup / step)."""
    step = max(step, 1)
    if step < warmup:
        return peak_lr * step / warmup
    return peak_lr * math.sqrt(warmup / step)


def learning_rate(cfg: TrainConfig, step: int, d_model: int) -> float:
    """The lr for optimiser step `step` (1-based) under `cfg`."""
    if cfg.schedule == "noam":
        return noam(step, d_model, cfg.warmup_steps, cfg.lr_scale)
    if cfg.schedule == "inverse_sqrt":
        return inverse_sqrt(step, cfg.peak_lr, cfg.warmup_steps)
    return cfg.peak_lr * min(1.0, max(step, 1) / cfg.warmup_steps)  # constant after warm-up
