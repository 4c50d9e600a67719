"""Model configuration: a typed, frozen dataclass saved with every model as `config.json`.

Defaults are the paper's base model (Vaswani et al. 2017, Table 3, row "base"). The JSON file
carries a schema version so an old model directory either loads or fails with a clear message,
never silently with the wrong meaning.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text, read_json_object

#: Bump when a field changes meaning or is removed; adding a field with a default does not.
SCHEMA_VERSION = 1

Positional = Literal["sinusoidal", "learned", "rope", "none"]
Activation = Literal["relu", "gelu"]
Tying = Literal["none", "decoder", "all"]
AttentionImpl = Literal["auto", "sdpa", "math"]


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of an encoder-decoder Transformer.

    Every field has the paper's value for the base model as its default.
    """

    src_vocab_size: int = 37000  # §5.1: shared source-target BPE vocabulary of ~37k tokens
    tgt_vocab_size: int = 37000
    d_model: int = 512  # §3: all sub-layers and embeddings produce outputs of dimension 512
    n_heads: int = 8  # §3.2.2: h = 8 parallel attention heads
    d_ff: int = 2048  # §3.3: inner layer of the position-wise feed-forward network
    n_encoder_layers: int = 6  # §3.1: N = 6
    n_decoder_layers: int = 6  # §3.1: N = 6
    dropout: float = 0.1  # §5.4: P_drop = 0.1 on sub-layer outputs and embeddings + positions
    attention_dropout: float = 0.0  # not in the paper; tensor2tensor later added it
    activation_dropout: float = 0.0  # not in the paper: on the FFN's inner activations
    activation: Activation = "relu"  # §3.3: FFN(x) = max(0, xW1 + b1)W2 + b2
    norm_first: bool = False  # False = post-LN, the paper's LayerNorm(x + Sublayer(x)) (§3.1)
    layer_norm_eps: float = 1e-5
    positional: Positional = "sinusoidal"  # §3.5; "learned" performed nearly identically
    max_len: int = 1024  # longest sequence for learned positions (sinusoidal extrapolates)
    tie_embeddings: Tying = "all"  # §3.4: source emb = target emb = pre-softmax projection
    pad_id: int = 0
    # "math" is the reference path that can return weights; "sdpa" PyTorch's fused kernel;
    # "auto" the faster of the two where it runs (math for CPU half-precision training).
    attention_impl: AttentionImpl = "auto"
    # Not in the paper. Local self-attention: each position attends only to positions at most
    # this far away (causal in the decoder); None = full attention (the paper). Cross-attention
    # always sees the whole source.
    attention_window: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. preset name)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"config field '{name}' = {getattr(self, name)!r}: {why}")

        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise bad(name, "must be a non-negative integer")
        window = self.attention_window
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
            raise bad("attention_window", "must be an integer >= 1, or None for full attention")
        if window is not None and window < 1:
            raise bad("attention_window", "must be >= 1, or None for full attention")
        if self.d_model % self.n_heads:
            raise bad("d_model", f"must be divisible by n_heads = {self.n_heads}")
        if self.positional == "rope" and (self.d_model // self.n_heads) % 2:
            raise bad("positional", "rope needs an even head dimension (d_model / n_heads)")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "must be in [0, 1)")
        choices = {
            "activation": Activation,
            "positional": Positional,
            "tie_embeddings": Tying,
            "attention_impl": AttentionImpl,
        }
        for name, literal in choices.items():
            if getattr(self, name) not in literal.__args__:
                raise bad(name, f"must be one of {', '.join(literal.__args__)}")
        if self.tie_embeddings == "all" and self.src_vocab_size != self.tgt_vocab_size:
            raise bad(
                "tie_embeddings",
                "'all' shares one embedding across languages, so src_vocab_size must equal "
                "tgt_vocab_size; use 'decoder' for separate vocabularies",
            )
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise bad("pad_id", "must be a valid token id in both vocabularies")

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / h (§3.2.2)."""
        return self.d_model // self.n_heads

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # --- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        data = dict(data)
        version = data.pop("schema_version", None)
        if version is None:
            raise ConfigError(f"{source}: missing 'schema_version'; is this an aiayn config?")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"{source}: schema_version {version} is not supported by this aiayn "
                f"(expects {SCHEMA_VERSION}); upgrade aiayn or re-export the model"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; check spelling")
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except TypeError as err:  # e.g. a list where an int belongs
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write `config.json` atomically (never leaves a half-written file)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        data = read_json_object(path, "config file")
        return cls.from_dict(data, source=str(path))


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
