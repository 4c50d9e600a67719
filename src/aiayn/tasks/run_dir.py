"""What every task's train function does around its own data: the checks made before any data
is read, and the files a run directory holds besides the Trainer's (the tokenizer, the model's
config, the task's options)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text

TASK_CONFIG = "task_config.json"


class _Saves(Protocol):
    def save(self, directory: Path) -> Any: ...


def check_start(
    out_dir: str | os.PathLike,
    resume: bool,
    model_config: Any,
    family: type,
    needs: str,
    higher_is_better: Callable[[str], bool],
    best_metric: str,
) -> Path:
    """`out_dir` as a Path after the checks that need no data: the model config is of
    `family` (`needs`: e.g. "a classifier needs an encoder-only model config (bert-tiny, …)"),
    the task reports `best_metric`, and `out_dir` holds no other run (or the one to resume)."""
    from aiayn.train.checkpoint import check_run_dir

    if not isinstance(model_config, family):
        raise ConfigError(f"{needs}, not a {model_config.arch} one")
    out_dir = Path(out_dir)
    check_run_dir(out_dir, resume)
    higher_is_better(best_metric)
    return out_dir


def write_run_files(
    out_dir: Path,
    resume: bool,
    tokenizer: _Saves,
    model_config: Any,
    task_record: dict[str, Any],
    is_main: bool = True,
) -> None:
    """On the main rank: the tokenizer and the model config of a fresh run, and the task's
    options (`task_record`, JSON), rewritten only when they changed, so that resuming a
    finished run leaves every file as it was."""
    if not is_main:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        tokenizer.save(out_dir)
        model_config.save(out_dir / "config.json")
    text = json.dumps(task_record, indent=2) + "\n"
    path = out_dir / TASK_CONFIG
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


__all__ = ["TASK_CONFIG", "check_start", "write_run_files"]
