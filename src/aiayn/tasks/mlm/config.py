"""`MLMConfig`: what masked-language-model pretraining adds to a training run — the WordPiece
vocabulary, how lines are packed into sequences, the masking — and the metrics it reports.

Light to import: the command line builds its flags from it without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aiayn.config import check_field_types, option
from aiayn.errors import ConfigError

#: The metrics `MLMTask.validate` reports, each → whether higher is better.
METRICS: dict[str, bool] = {
    "loss": False,  # cross-entropy in nats per masked token
    "ppl": False,  # exp(loss)
    "accuracy": True,  # fraction of masked tokens predicted exactly
}


@dataclass(frozen=True)
class MLMConfig:
    """The options of masked-LM pretraining; defaults are BERT's where it has one."""

    tokenizer: str | None = option(
        "a BERT tokenizer.json (or a model directory holding one) to use instead of training "
        "a WordPiece vocabulary: a published BERT's, or an earlier run's to reproduce it; "
        "unset = train one on the training text",
        None,
    )
    vocab_size: int = option("WordPiece vocabulary size, special tokens included", 8000)
    lowercase: bool = option(
        "lowercase and strip accents before WordPiece (BERT uncased); off = cased", True
    )
    context: int | None = option(
        "tokens per training sequence, [CLS] and [SEP]s included: lines are packed up to it "
        "(BERT's first phase: 128); unset = the model's max_len",
        128,
    )
    parallel: bool = option(
        "the two training files are the sides of a parallel corpus (line i of one translates "
        "line i of the other): each pair is one sequence, [CLS] line [SEP] translation [SEP], "
        "so a masked word can be recovered from the other language (XLM's translation LM); "
        "validation files, if given, are two sides as well; off = lines packed per file",
        False,
    )
    max_tokens: int = option("tokens per micro-batch, padding included", 4096)
    mask_rate: float = option("fraction of tokens selected for prediction (BERT: 0.15)", 0.15)
    whole_word_masking: bool = option(
        "select whole words, all their WordPieces together (BERT's 2019 update)", False
    )
    valid_fraction: float = option(
        "without a validation file: the last this fraction of the training lines validates", 0.05
    )

    def __post_init__(self) -> None:
        check_field_types(self, "mlm option")

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"mlm option '{name}' = {getattr(self, name)!r}: {why}")

        if self.vocab_size <= 0 or self.max_tokens <= 0:
            name = "vocab_size" if self.vocab_size <= 0 else "max_tokens"
            raise bad(name, "must be positive")
        if self.context is not None and self.context < 4:
            raise bad("context", "must be at least 4 ([CLS], a token, [SEP]) or unset")
        if not 0.0 < self.mask_rate < 1.0:
            raise bad("mask_rate", "must be in (0, 1); BERT's is 0.15")
        if not 0.0 < self.valid_fraction < 1.0:
            raise bad("valid_fraction", "must be in (0, 1)")

    def replace(self, **changes: Any) -> MLMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "mlm", **dataclasses.asdict(self)}


def higher_is_better(metric: str) -> bool:
    """Whether a larger `metric` of masked-LM validation is better; ConfigError naming the
    metrics there are otherwise."""
    if metric not in METRICS:
        raise ConfigError(
            f"best_metric '{metric}' is not a masked-LM metric; choose one of {', '.join(METRICS)}"
        )
    return METRICS[metric]
