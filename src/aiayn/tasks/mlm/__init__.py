"""Masked-LM pretraining (BERT): text files + WordPiece + EncoderOnly + the masked-LM loss.

- `config`: `MLMConfig`, the task's options, and the `METRICS` its validation reports;
- `data`: lines packed into [CLS] A [SEP] B [SEP] sequences;
- `task`: `MLMTask`, what the Trainer calls: batches masked anew, loss, validation, export;
- `train`: `train_mlm`, tokenizer + sequences + model + task + Trainer for one run directory.

The config and `train_mlm` import without torch (the command line builds its flags from them).
"""

from typing import Any

from aiayn.tasks.mlm.config import METRICS, MLMConfig
from aiayn.tasks.mlm.train import train_mlm

__all__ = ["METRICS", "MLMConfig", "MLMTask", "train_mlm"]


def __getattr__(name: str) -> Any:
    if name == "MLMTask":
        from aiayn.tasks.mlm.task import MLMTask

        return MLMTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
