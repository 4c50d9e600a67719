"""Learning-rate schedules, as functions of the (1-based) optimiser step."""

from __future__ import annotations

import math

from aiayn.errors import ConfigError
from aiayn.train.config import TrainConfig


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


def cosine(step: int, peak_lr: float, warmup: int, decay_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up to `peak_lr`, then half a cosine down to `min_lr` at `decay_steps`, flat
    after. Ending at ~0 when training ends anneals the weights the way checkpoint averaging
    does, without having to stop at a time the schedule knows nothing about."""
    step = max(step, 1)
    if step < warmup:
        return peak_lr * step / warmup
    return _half_cosine((step - warmup) / (decay_steps - warmup), peak_lr, min_lr)


def cosine_by_time(
    step: int,
    minutes: float,
    peak_lr: float,
    warmup: int,
    decay_minutes: float,
    min_lr: float = 0.0,
) -> float:
    """The cosine over wall-clock time: half a cosine from `peak_lr` at minute 0 to `min_lr` at
    `decay_minutes`, capped by the linear warm-up over the first `warmup` steps. With
    decay_minutes = max_minutes a time-boxed run anneals to min_lr exactly at its deadline,
    however fast the machine turns out to be (a step-based decay either ends early and idles
    at min_lr, or is cut off above it)."""
    ramp = peak_lr * max(step, 1) / warmup
    return min(ramp, _half_cosine(minutes / decay_minutes, peak_lr, min_lr))


def _half_cosine(progress: float, high: float, low: float) -> float:
    """`high` at progress 0, `low` at progress ≥ 1, half a cosine between."""
    progress = min(1.0, max(0.0, progress))
    return low + 0.5 * (high - low) * (1.0 + math.cos(math.pi * progress))


def learning_rate(
    cfg: TrainConfig, step: int, d_model: int | None = None, minutes: float = 0.0
) -> float:
    """The lr for optimiser step `step` (1-based) under `cfg`; `minutes` of training so far
    drive the cosine when it decays over time (`cfg.decay_minutes`). `d_model`, the model's
    width, scales the noam schedule (and only it)."""
    if cfg.schedule == "noam":
        if d_model is None:
            raise ConfigError(
                "the noam schedule scales the lr by d_model^-0.5: give the model's d_model "
                "(Trainer(..., d_model=…)) or choose another schedule"
            )
        return noam(step, d_model, cfg.warmup_steps, cfg.lr_scale)
    if cfg.schedule == "inverse_sqrt":
        return inverse_sqrt(step, cfg.peak_lr, cfg.warmup_steps)
    if cfg.schedule == "cosine":
        if cfg.decay_minutes is not None:
            return cosine_by_time(
                step, minutes, cfg.peak_lr, cfg.warmup_steps, cfg.decay_minutes, cfg.min_lr
            )
        decay_steps = cfg.decay_steps or cfg.max_steps
        return cosine(step, cfg.peak_lr, cfg.warmup_steps, decay_steps, cfg.min_lr)
    return cfg.peak_lr * min(1.0, max(step, 1) / cfg.warmup_steps)  # constant after warm-up
