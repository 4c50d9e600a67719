"""`TranslationConfig`: everything translation adds to a training run — how text becomes token
ids, what a batch is, the loss and its regularisers, how validation decodes — and the metrics
its validation reports.

The task-agnostic rest (optimiser, schedule, stopping, checkpoints) is `TrainConfig`'s. Each
field's help text is its `aiayn train translation` flag's (`aiayn.cli.flags`). Light to import:
the command line builds its flags from it without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from aiayn.config import check_field_types, option
from aiayn.errors import ConfigError

Tokenizer = Literal["bpe", "wordpiece"]

#: The metrics `TranslationTask.validate` reports, each → whether higher is better.
METRICS: dict[str, bool] = {
    "loss": False,  # label-smoothed, per target token
    "nll": False,
    "ppl": False,
    "bleu": True,
    "exact_match": True,
}


@dataclass(frozen=True)
class TranslationConfig:
    """The options of the translation task; defaults follow the paper (§5.1, §5.4)."""

    # data: how training text becomes token ids
    vocab_size: int = option(
        "subword vocabulary size (the paper's shared BPE had ~37k for WMT En-De)", 8000
    )
    joint: bool = field(
        default=True,
        metadata={
            "help": "one vocabulary per language instead of a shared one (§5.1 shares)",
            "flag": "--separate-vocab",
        },
    )
    tokenizer: Tokenizer = option("subword model", "bpe")
    lowercase: bool = option(
        "lowercase all text: the model reads and writes lowercase only (the usual Multi30k "
        "preprocessing for lowercased BLEU; output is no longer true-cased)",
        False,
    )
    # no flag of its own: the model's --max-len sets it too
    max_len: int = option("training pairs with a longer side (in tokens) are skipped", 256)
    # batching (§5.1): ~25k source + 25k target tokens per step, reached via accumulation
    max_tokens: int = option("tokens per micro-batch (padded size of the larger side)", 4096)
    max_sentences: int | None = option("sentences per micro-batch at most; unset = no limit", None)
    # loss (§5.4): label smoothing ε_ls = 0.1
    label_smoothing: float = option("label smoothing ε_ls (§5.4)", 0.1)
    # R-Drop (Liang et al., 2021; not in the paper). Late R-Drop spends the doubled batches
    # where over-fitting begins, not on the early steps that only need to be many.
    r_drop: float = option(
        "R-Drop: run each batch twice (two dropout masks) and add α × their symmetric KL to "
        "the loss, a regulariser for small corpora; a step costs ~2×; 0 = off",
        0.0,
    )
    r_drop_start_step: int | None = option(
        "R-Drop only from this optimiser step on, the plain loss before; unset = from the start",
        None,
    )
    r_drop_start_minutes: float | None = option(
        "R-Drop only from this minute of the run's clock on (resumes included), for time-boxed "
        "runs; unset = from the start",
        None,
    )
    # input noise (not in the paper): aiayn.data.token_dropout, aiayn.tokenizers.bpe_dropout
    token_dropout: float = option(
        "replace each source and decoder-input token of a training batch by <unk> with this "
        "probability (word dropout), a regulariser for small corpora; 0 = off",
        0.0,
    )
    bpe_dropout: float = option(
        "BPE-dropout (Provilkov et al., 2020): segment the training text anew each epoch, "
        "skipping each BPE merge with this probability (0.1 in the paper); a regulariser for "
        "small corpora, ~25% more tokens per sentence at 0.1; BPE tokenizers only; it hurt on "
        "Multi30k's byte-level vocabulary (docs/results.md, run 18); 0 = off",
        0.0,
    )
    # BiT (Ding et al., 2021; not in the paper): aiayn.data.bidirectional
    bidirectional_epochs: int = option(
        "bidirectional training (BiT): the first N epochs train on every pair in both "
        "directions, target->source too, each such epoch twice as long; then the real "
        "direction alone. Needs the shared vocabulary; on Multi30k in an hour it moved val "
        "BLEU by +0.4, within noise (docs/results.md, run 22); 0 = off",
        0,
    )
    # validation
    valid_beam: int = option("beam size for validation BLEU; 1 = greedy (fast)", 1)
    valid_bleu_sentences: int | None = option(
        "decode only the first N validation sentences for BLEU; unset = all", None
    )

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"translation option '{name}' = {getattr(self, name)!r}: {why}")

        check_field_types(self, "translation option")
        if self.max_len < 2:
            raise bad("max_len", "must be at least 2 (a source token and </s>)")
        for name in ("vocab_size", "max_len", "max_tokens", "valid_beam"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in (
            "max_sentences", "r_drop_start_step", "r_drop_start_minutes", "valid_bleu_sentences",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise bad(name, "must be positive (or unset)")
        if self.tokenizer not in Tokenizer.__args__:
            raise bad("tokenizer", f"must be one of {', '.join(Tokenizer.__args__)}")
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

    def replace(self, **changes: Any) -> TranslationConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "translation", **dataclasses.asdict(self)}


def higher_is_better(metric: str) -> bool:
    """Whether a larger `metric` of translation's validation is better; ConfigError naming
    the metrics there are if it reports no such metric."""
    if metric not in METRICS:
        raise ConfigError(
            f"best_metric '{metric}' is not a translation metric; choose one of "
            f"{', '.join(METRICS)}"
        )
    return METRICS[metric]
