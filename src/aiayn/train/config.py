"""Training configuration: a typed, frozen dataclass saved with every run as `train_config.json`.

Only what every task shares lives here; a task's own options (its batches, its loss) live in
its config (`aiayn.tasks.translation.TranslationConfig`). Defaults follow the paper (§5.3,
§5.4) and fairseq where the paper is silent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from aiayn.config import SCHEMA_VERSION, check_field_types, option
from aiayn.errors import ConfigError

Schedule = Literal["noam", "inverse_sqrt", "cosine", "constant"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train, whatever the task: optimiser, schedule, accumulation, stopping, validation
    and checkpoints, weight averaging, precision. What a batch is and how its loss is computed
    belong to the task's own config (e.g. `aiayn.tasks.translation.TranslationConfig`).

    Defaults follow the paper (§5.3, §5.4) and fairseq where the paper is silent. Each field's
    help text is its `aiayn train` flag's (`aiayn.cli.flags`).
    """

    # optimiser (§5.3): Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9
    adam_betas: tuple[float, float] = option("Adam's β1 and β2 (§5.3)", (0.9, 0.98))
    adam_eps: float = option("Adam's ε (§5.3)", 1e-9)
    weight_decay: float = option(
        "AdamW decay on weight matrices (decoupled; not in the paper); 0 = plain Adam", 0.0
    )
    clip_norm: float = option("clip the gradient L2 norm to this; 0 = off (the paper's)", 0.0)
    # schedule (§5.3): lr = scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)
    schedule: Schedule = option(
        "learning-rate schedule: noam (the paper's, scaled by d_model^-0.5), inverse_sqrt, "
        "cosine, or constant after the warm-up",
        "noam",
    )
    warmup_steps: int = option("linear warm-up steps", 4000)
    # fairseq/t2t call it learning_rate / lr factor
    lr_scale: float = option("multiplier of the noam schedule", 1.0)
    peak_lr: float = option("lr reached after the warm-up by inverse_sqrt, cosine, constant", 5e-4)
    # "cosine": half a cosine from peak_lr down to min_lr at step decay_steps (default max_steps),
    # or at minute decay_minutes of wall-clock training time (set it to max_minutes)
    decay_steps: int | None = option(
        "step where the cosine reaches --min-lr; unset = --max-steps", None
    )
    decay_minutes: float | None = option(
        "cosine over wall-clock time instead: reach --min-lr at this minute of the run (set it "
        "to --max-minutes; the warm-up stays in steps; the lr then follows the clock, so a "
        "resumed run is not bit-identical to a straight one); unset = by steps",
        None,
    )
    min_lr: float = option("lr at the end of the cosine decay", 0.0)
    # accumulation: the paper's ~25k source + 25k target tokens per step, with fewer per batch
    update_freq: int = option(
        "micro-batches accumulated per optimiser step (and per rank under DDP)", 1
    )
    # stopping
    max_steps: int | None = option(
        "optimiser steps (the paper trains base for 100k); unset = no limit", 100_000
    )
    max_epochs: int | None = option("passes over the data; unset = no limit", None)
    max_minutes: float | None = option(
        "wall-clock budget of the run, resumes included; unset = no limit", None
    )
    # validation and checkpoints
    valid_every: int | None = option(
        "validate and save a checkpoint every N steps; 0 (in a flag or recipe) or unset = only "
        "by --valid-every-minutes",
        1000,
    )
    # A time-boxed recipe wants this: its last K checkpoints then span the same share of the
    # hour however fast the machine, where a step interval tuned on a fast CPU spreads them over
    # the whole run of a slow one (averaging half-trained weights).
    valid_every_minutes: float | None = option(
        "also validate and checkpoint every N minutes of the run's clock, so that the last K "
        "checkpoints span the same share of a time-boxed run on any machine; 0 or unset = off",
        None,
    )
    keep_last: int = option("checkpoints kept (the best is kept as well)", 5)
    # An update whose loss or gradient norm is NaN/inf is skipped (no optimiser step); a run of
    # them means the run has diverged or the data is broken: stop with an error.
    max_bad_steps: int = option(
        "stop with an error after N updates in a row skipped for a non-finite (NaN/inf) loss "
        "or gradient norm; each is skipped: no optimiser step",
        8,
    )
    best_metric: str = option(
        "validation metric that picks the best checkpoint (and stops early); the task says "
        "whether higher or lower is better",
        "loss",
    )
    patience: int | None = option(
        "stop after N validations without improvement; unset = never early", None
    )
    average_last: int = option(
        "export the average of the last K checkpoints; 0 = export the best (the paper "
        "averages the last 5 for base)",
        0,
    )
    # Or an exponential moving average of the weights (aiayn.train.ema), which validation
    # scores and the model directory holds instead of the raw weights: a fixed decay per
    # update (fairseq's --ema-decay, e.g. 0.999), or a time constant in minutes of training,
    # for a time-boxed run (each update decays it by exp(-the update's minutes / ema_minutes)).
    ema_decay: float | None = option(
        "keep an exponential moving average of the weights, ema = d·ema + (1-d)·weights after "
        "each update (e.g. 0.999), and validate and export it instead of the raw weights; "
        "needs --average-last 0; unset = off",
        None,
    )
    ema_minutes: float | None = option(
        "the same EMA with a time constant in minutes of training instead of a fixed d (each "
        "update decays it by exp(-its duration / N)), for time-boxed runs; unset = off",
        None,
    )
    # run: "auto" is measured at start-up by aiayn.train.precision
    precision: Precision = option(
        "fp32, bf16 autocast, fp16 with loss scaling (CUDA), or auto: bf16 where the machine "
        "multiplies bf16 natively (measured at start-up), else fp32 on CPU and fp16 on GPUs "
        "without bf16. bf16 on a CPU without it (e.g. AVX2 only) is many times slower than fp32",
        "fp32",
    )
    seed: int = option("random seed (weights, batch order, dropout)", 1)
    log_every: int = option("log training metrics every N steps", 100)
    device: str = option("cpu, cuda, cuda:1 …; auto = cuda if available, else cpu", "auto")
    compile: bool = option("torch.compile the model (falls back to eager on failure)", False)
    # Data parallelism is DDP under torchrun unless fsdp: see aiayn.train.fsdp.
    fsdp: bool = option(
        "shard parameters, gradients and optimizer state across the ranks with FSDP2 "
        "(torch.distributed.fsdp.fully_shard, per block then the whole model) instead of "
        "replicating them with DDP: for models past one device's memory. Needs torchrun with "
        "2 or more processes; checkpoints and the model directory stay whole single files",
        False,
    )
    tensorboard: bool = option("also log to OUT/tensorboard", False)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"training option '{name}' = {getattr(self, name)!r}: {why}")

        check_field_types(self, "training option")
        if self.peak_lr <= 0:
            raise bad("peak_lr", "must be positive")
        for name in ("warmup_steps", "update_freq", "log_every", "max_bad_steps"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in (
            "max_steps", "max_epochs", "max_minutes", "patience", "decay_steps", "decay_minutes",
            "valid_every", "valid_every_minutes", "ema_minutes",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise bad(name, "must be positive (or unset)")
        if self.valid_every is None and self.valid_every_minutes is None:
            raise bad("valid_every", "set valid_every (steps) or valid_every_minutes")
        if self.keep_last < 1:
            raise bad("keep_last", "must keep at least 1 checkpoint")
        if self.average_last > self.keep_last:
            raise bad("average_last", f"cannot average more than keep_last={self.keep_last}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise bad("ema_decay", "must be in (0, 1), e.g. 0.999 (or unset: no EMA)")
        if self.ema_decay is not None and self.ema_minutes is not None:
            raise bad("ema_minutes", "set ema_decay or ema_minutes, not both")
        if self.average_last > 1 and (self.ema_decay or self.ema_minutes):
            raise bad(
                "average_last", "the export is the EMA of the weights (ema_decay/ema_minutes) "
                "or the average of the last checkpoints, not both: set average_last to 0 "
                "(--average-last 0)",
            )  # fmt: skip
        if self.schedule not in Schedule.__args__:
            raise bad("schedule", f"must be one of {', '.join(Schedule.__args__)}")
        if self.decay_minutes is not None and self.schedule != "cosine":
            raise bad("decay_minutes", "only the cosine schedule decays over time")
        if self.decay_minutes is not None and self.decay_steps is not None:
            raise bad("decay_minutes", "set decay_steps or decay_minutes, not both")
        if self.schedule == "cosine" and self.decay_minutes is None:
            end = self.decay_steps or self.max_steps
            if end is None:
                raise bad(
                    "decay_steps",
                    "the cosine schedule needs decay_steps, decay_minutes or max_steps",
                )
            if end <= self.warmup_steps:
                raise bad(
                    "decay_steps", f"the decay must end after warmup_steps={self.warmup_steps} "
                    f"(decay_steps, or max_steps when unset, is {end})",
                )  # fmt: skip
        if not 0.0 <= self.min_lr <= self.peak_lr:
            raise bad("min_lr", f"must be in [0, peak_lr={self.peak_lr}]")
        if self.precision not in Precision.__args__:
            raise bad("precision", f"must be one of {', '.join(Precision.__args__)}")
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise bad("max_steps", "set at least one of max_steps, max_epochs, max_minutes")

    @property
    def ema(self) -> bool:
        """Whether an EMA of the weights is kept (and validated and exported)."""
        return self.ema_decay is not None or self.ema_minutes is not None

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> TrainConfig:
        data = {k: v for k, v in data.items() if k != "schema_version"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}; check spelling")
        if "adam_betas" in data:
            data["adam_betas"] = tuple(data["adam_betas"])
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
