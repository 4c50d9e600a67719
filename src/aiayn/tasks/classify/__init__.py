"""Sequence classification (BERT fine-tuning): labelled .tsv/.csv/.jsonl + WordPiece +
EncoderOnly's classifier + cross-entropy.

- `config`: `ClassifyConfig`, the task's options, and the `METRICS` its validation reports;
- `task`: `ClassifyTask`, what the Trainer calls; `Examples`, encoded examples;
- `train`: `train_classify`, from a pretrained encoder (`init`) or from scratch.

The config and `train_classify` import without torch (the command line builds its flags from
them).
"""

from typing import Any

from aiayn.tasks.classify.config import METRICS, ClassifyConfig
from aiayn.tasks.classify.train import train_classify

__all__ = ["METRICS", "ClassifyConfig", "ClassifyTask", "train_classify"]


def __getattr__(name: str) -> Any:
    if name == "ClassifyTask":
        from aiayn.tasks.classify.task import ClassifyTask

        return ClassifyTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
