"""Training configuration: a typed, frozen dataclass saved with every run as `train_config.json`.

Defaults follow the paper (§5.3, §5.4) and fairseq where the paper is silent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from aiayn.config import SCHEMA_VERSION
from aiayn.errors import ConfigError

Schedule = Literal["noam", "inverse_sqrt", "cosine", "constant"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule, batching, precision, validation and stopping.

    Defaults follow the paper (§5.3, §5.4) and fairseq where the paper is silent.
    """

    # optimiser (§5.3): Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-9
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0; not in the paper
    clip_norm: float = 0.0  # max gradient L2 norm; 0 = no clipping (the paper does not clip)
    # schedule (§5.3): lr = scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)
    schedule: Schedule = "noam"
    warmup_steps: int = 4000
    lr_scale: float = 1.0  # "noam" multiplier (fairseq/t2t call it learning_rate / lr factor)
    peak_lr: float = 5e-4  # "inverse_sqrt", "cosine", "constant": the lr reached after warm-up
    # "cosine": half a cosine from peak_lr down to min_lr at step decay_steps (default max_steps),
    # or at minute decay_minutes of wall-clock training time (set it to max_minutes)
    decay_steps: int | None = None
    decay_minutes: float | None = None
    min_lr: float = 0.0
    # loss (§5.4): label smoothing ε_ls = 0.1
    label_smoothing: float = 0.1
    # R-Drop (not in the paper): weight α of the KL between two dropout passes of each batch;
    # 0 = off. Each step then costs about twice as much (the batch runs twice).
    r_drop: float = 0.0
    # ... from this step, or this minute of the run's clock, on; plain loss before (None: from
    # the start). Late R-Drop spends the doubled batches where over-fitting begins, not on
    # the early steps that only need to be many.
    r_drop_start_step: int | None = None
    r_drop_start_minutes: float | None = None
    # Token dropout (not in the paper): each input token of a training batch, source and
    # decoder input, becomes <unk> with this probability (aiayn.data.token_dropout); 0 = off.
    token_dropout: float = 0.0
    # BPE-dropout (Provilkov et al., 2020; not in the paper): the training text is segmented
    # anew each epoch, each BPE merge skipped with this probability
    # (aiayn.tokenizers.bpe_dropout); 0 = off. Needs a BPE tokenizer.
    bpe_dropout: float = 0.0
    # Bidirectional training (BiT, Ding et al., 2021; not in the paper): the first N epochs
    # train on every pair in both directions (aiayn.data.bidirectional), each such epoch twice
    # as long; 0 = off. Needs one vocabulary shared by both languages.
    bidirectional_epochs: int = 0
    # batching (§5.1): ~25k source + 25k target tokens per step, reached via accumulation
    max_tokens: int = 4096  # per micro-batch, padded size of the larger side
    max_sentences: int | None = None
    update_freq: int = 1  # micro-batches accumulated per optimiser step (and per rank)
    # stopping
    max_steps: int | None = 100_000  # the paper trains base for 100k steps
    max_epochs: int | None = None
    max_minutes: float | None = None
    # validation and checkpoints
    valid_every: int | None = 1000  # steps; also saves a checkpoint (None: by the clock only)
    # Also validate (and save) every N minutes of the run's clock. A time-boxed recipe wants
    # this: its last K checkpoints then span the same share of the hour however fast the
    # machine, where a step interval tuned on a fast CPU spreads them over the whole run of a
    # slow one (averaging half-trained weights).
    valid_every_minutes: float | None = None
    keep_last: int = 5  # the paper averages the last 5 checkpoints for base
    best_metric: str = "loss"  # a key returned by validation ("loss", "bleu", …)
    patience: int | None = None  # validations without improvement before stopping early
    average_last: int = 0  # > 1: the exported model averages the last K checkpoints
    # Or an exponential moving average of the weights (aiayn.train.ema), which validation
    # scores and the model directory holds instead of the raw weights: a fixed decay per
    # update (fairseq's --ema-decay, e.g. 0.999), or a time constant in minutes of training,
    # for a time-boxed run (each update decays it by exp(-the update's minutes / ema_minutes)).
    ema_decay: float | None = None
    ema_minutes: float | None = None
    # run
    # "auto": bf16 where this machine multiplies bf16 natively, else fp32 (fp16 on CUDA GPUs
    # without bf16); measured at start-up by aiayn.train.precision
    precision: Precision = "fp32"
    seed: int = 1
    log_every: int = 100
    device: str = "auto"  # "auto": cuda if available, else cpu
    compile: bool = False  # torch.compile the model (falls back to eager on failure)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"training option '{name}' = {getattr(self, name)!r}: {why}")

        for name in ("warmup_steps", "max_tokens", "update_freq", "log_every"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in (
            "max_steps", "max_epochs", "max_minutes", "patience", "max_sentences", "decay_steps",
            "decay_minutes", "valid_every", "valid_every_minutes", "r_drop_start_step",
            "r_drop_start_minutes", "ema_minutes",
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
        if not 0.0 <= self.label_smoothing < 1.0:
            raise bad("label_smoothing", "must be in [0, 1)")
        if self.r_drop < 0.0:
            raise bad("r_drop", "must be >= 0 (0 = off)")
        for name in ("r_drop_start_step", "r_drop_start_minutes"):
            if getattr(self, name) is not None and self.r_drop == 0:
                raise bad(name, "starts R-Drop, which is off: set r_drop > 0 too (5 is usual)")
        if self.r_drop_start_step is not None and self.r_drop_start_minutes is not None:
            raise bad(
                "r_drop_start_minutes", "set r_drop_start_step or r_drop_start_minutes, not both"
            )
        if not 0.0 <= self.token_dropout < 1.0:
            raise bad("token_dropout", "must be in [0, 1) (0 = off)")
        if not 0.0 <= self.bpe_dropout < 1.0:
            raise bad("bpe_dropout", "must be in [0, 1) (0 = off)")
        if self.bidirectional_epochs < 0:
            raise bad("bidirectional_epochs", "must be >= 0 (0 = off)")
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

    @property
    def best_higher(self) -> bool:
        """Whether a larger `best_metric` is better (BLEU, chrF, accuracy) or worse (loss)."""
        return self.best_metric in ("bleu", "chrf", "accuracy", "exact_match")

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
