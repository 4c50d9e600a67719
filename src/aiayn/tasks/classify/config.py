"""`ClassifyConfig`: what fine-tuning a sequence classifier adds to a training run — which
columns of the data hold the texts and labels, the sequence length, the batch — and the
metrics it reports.

Light to import: the command line builds its flags from it without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aiayn.config import check_field_types, option
from aiayn.errors import ConfigError

#: The metrics `ClassifyTask.validate` reports, each → whether higher is better.
METRICS: dict[str, bool] = {
    "loss": False,  # cross-entropy in nats per example
    "accuracy": True,
    "macro_f1": True,  # the unweighted mean of the classes' F1
    "mcc": True,  # Matthews correlation (GLUE's CoLA metric)
}


@dataclass(frozen=True)
class ClassifyConfig:
    """The options of sequence classification (single sentences or sentence pairs)."""

    text_column: str = option(
        "column (or JSON key) of the text; GLUE: sentence, or sentence1 for pairs", "sentence"
    )
    pair_column: str | None = option(
        "column of the second text of a pair (GLUE: sentence2); unset = single texts", None
    )
    label_column: str = option("column of the label", "label")
    max_len: int = option(
        "tokens per example, [CLS] and [SEP]s included; longer ones are cut, the longer text "
        "of a pair first (BERT)",
        128,
    )
    batch_size: int = option("examples per micro-batch", 32)
    vocab_size: int = option(
        "WordPiece vocabulary of a model trained from scratch (no --init)", 8000
    )
    lowercase: bool = option("lowercase and strip accents (from scratch only)", True)

    def __post_init__(self) -> None:
        check_field_types(self, "classify option")
        for name in ("batch_size", "vocab_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"classify option '{name}' = {getattr(self, name)!r}: must be positive"
                )
        if self.max_len < 3:
            raise ConfigError(
                f"classify option 'max_len' = {self.max_len}: must be at least 3 "
                "([CLS], a token, [SEP])"
            )
        if self.pair_column is not None and self.pair_column == self.text_column:
            raise ConfigError(
                f"classify option 'pair_column' = {self.pair_column!r}: the same column as "
                "text_column; name the second text's column"
            )

    def replace(self, **changes: Any) -> ClassifyConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "classify", **dataclasses.asdict(self)}


def higher_is_better(metric: str) -> bool:
    """Whether a larger `metric` of classification is better; ConfigError naming the metrics
    there are otherwise."""
    if metric not in METRICS:
        raise ConfigError(
            f"best_metric '{metric}' is not a classification metric; choose one of "
            f"{', '.join(METRICS)}"
        )
    return METRICS[metric]
