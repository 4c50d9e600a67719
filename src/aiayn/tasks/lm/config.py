"""`LMConfig`: what language modelling adds to a training run — the tokenizer, the training
windows, the validation split — and the metrics its validation reports.

The task-agnostic rest (optimiser, schedule, stopping, checkpoints) is `TrainConfig`'s. Each
field's help text is its `aiayn train lm` flag's (`aiayn.cli.flags`). Light to import: the
command line builds its flags from it without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from aiayn.config import check_field_types, option
from aiayn.errors import ConfigError

TokenizerKind = Literal["char", "bpe"]

#: The metrics `LMTask.validate` reports, each → whether higher is better (none is).
METRICS: dict[str, bool] = {
    "loss": False,  # cross-entropy in nats per token
    "ppl": False,  # exp(loss)
    "bpc": False,  # bits per character of the validation text
}


@dataclass(frozen=True)
class LMConfig:
    """The options of the language-modelling task; defaults are nanoGPT's character-level
    Shakespeare where it has one."""

    tokenizer: TokenizerKind = option(
        "char: one token per character of the training text; bpe: byte-level BPE (GPT-2's "
        "kind, any text round-trips)",
        "char",
    )
    vocab_size: int = option("BPE vocabulary size, special tokens included (bpe only)", 8000)
    batch_size: int = option("training windows (sequences) per micro-batch", 32)
    context: int | None = option(
        "tokens per training window (each predicts its next token); at most the model's "
        "context; unset = the model's context (max_len)",
        None,
    )
    valid_fraction: float = option(
        "without a validation file: the last this fraction of the training text validates "
        "(nanoGPT's split), the rest trains",
        0.1,
    )
    valid_batches: int | None = option(
        "score only the first N validation batches (of batch-size windows each); unset = all "
        "of the validation text",
        None,
    )

    def __post_init__(self) -> None:
        check_field_types(self, "lm option")

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"lm option '{name}' = {getattr(self, name)!r}: {why}")

        if self.tokenizer not in TokenizerKind.__args__:
            raise bad("tokenizer", f"must be one of {', '.join(TokenizerKind.__args__)}")
        for name in ("vocab_size", "batch_size"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in ("context", "valid_batches"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise bad(name, "must be positive (or unset)")
        if not 0.0 < self.valid_fraction < 1.0:
            raise bad("valid_fraction", "must be in (0, 1)")

    def replace(self, **changes: Any) -> LMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "lm", **dataclasses.asdict(self)}


def higher_is_better(metric: str) -> bool:
    """Whether a larger `metric` of the LM's validation is better (never: all are losses);
    ConfigError naming the metrics there are if it reports no such metric."""
    if metric not in METRICS:
        raise ConfigError(
            f"best_metric '{metric}' is not a language-model metric; choose one of "
            f"{', '.join(METRICS)}"
        )
    return METRICS[metric]


__all__ = ["METRICS", "LMConfig", "higher_is_better"]
