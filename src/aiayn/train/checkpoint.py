"""Training checkpoints: written atomically, found again after any crash, pruned, averaged.

Layout under `<out>/checkpoints/`:

    step_00001000/           one complete checkpoint
        model.safetensors    weights (safetensors: loading never unpickles code)
        ema.safetensors      the moving average of the weights, when the run keeps one
        training_state.pt    optimiser, RNG, data position, counters (tensors and plain types,
                             loaded with `weights_only=True`)
        meta.json            step, epoch, validation metrics
    best.json                which step scored best on validation

A checkpoint is written into a hidden `.tmp-…` directory and renamed into place in one
`os.rename`, so a `kill -9` at any moment leaves either the previous checkpoints or the new
complete one, never a half-written directory under a real name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from aiayn.errors import ConfigError
from aiayn.io import atomic_path, atomic_write_text
from aiayn.models.serialization import CHECKPOINTS_DIR, WEIGHTS_NAME

log = logging.getLogger(__name__)

# The model directory's file name, so a checkpoint directory loads as a model
# (serialization.run_dir_of_checkpoint) and averaging writes straight into a model directory.
WEIGHTS = WEIGHTS_NAME
EMA_WEIGHTS = "ema.safetensors"
STATE = "training_state.pt"
META = "meta.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / META).read_text(encoding="utf-8"))


def list_checkpoints(directory: Path) -> list[Checkpoint]:
    """Complete checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / META).is_file():  # META is written last
            found.append(Checkpoint(int(match.group(1)), child))
    return sorted(found, key=lambda c: c.step)


def check_run_dir(out_dir: Path, resume: bool) -> list[Checkpoint]:
    """The checkpoints of the run in `out_dir`, after checking they fit the request: resuming
    needs at least one; a fresh run must not overwrite another run's."""
    found = list_checkpoints(out_dir / CHECKPOINTS_DIR)
    if resume and not found:
        raise ConfigError(f"{out_dir}: no checkpoint to resume from; drop --resume to start afresh")
    if not resume and found:
        raise ConfigError(
            f"{out_dir} already holds checkpoints; pass --resume to continue that run, or "
            "choose another --out directory"
        )
    return found


def save_checkpoint(
    directory: Path,
    step: int,
    model: nn.Module,
    training_state: dict[str, Any],
    meta: dict[str, Any],
    ema: nn.Module | None = None,
) -> Checkpoint:
    """Write checkpoint `step` atomically and return it (with `ema`, the model holding the
    moving average of the weights, saved as the model is)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step_{step:08d}"
    tmp = directory / f".tmp-step_{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / WEIGHTS))
        if ema is not None:
            save_model(ema, str(tmp / EMA_WEIGHTS))
        torch.save(training_state, tmp / STATE)
        (tmp / META).write_text(json.dumps({"step": step, **meta}, indent=2), encoding="utf-8")
        for child in tmp.iterdir():
            _fsync(child)
        if final.exists():  # re-saving the same step (e.g. final save after a validation)
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Checkpoint(step, final)


def load_checkpoint(
    checkpoint: Checkpoint, model: nn.Module, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load weights into `model` and return the training state."""
    try:
        load_model(model, str(checkpoint.path / WEIGHTS), device=str(device))
    except Exception as err:  # corrupt or from another model: name it, say what to do
        raise _unloadable(checkpoint, err) from None
    return load_training_state(checkpoint, device)


def load_training_state(
    checkpoint: Checkpoint, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The training state alone (optimiser, RNG, data position, counters): what the ranks of
    a sharded run read, whose weights come to them from rank 0 (`aiayn.train.fsdp`)."""
    try:
        return torch.load(checkpoint.path / STATE, map_location=device, weights_only=True)
    except Exception as err:
        raise _unloadable(checkpoint, err) from None


def _unloadable(checkpoint: Checkpoint, err: Exception) -> ConfigError:
    return ConfigError(
        f"{checkpoint.path}: cannot load checkpoint ({type(err).__name__}: {err}); "
        "delete it to resume from the previous one"
    )


def load_ema(checkpoint: Checkpoint, ema: nn.Module, device: torch.device | str = "cpu") -> bool:
    """Load the EMA weights saved with `checkpoint` into `ema`; False if its run kept none."""
    path = checkpoint.path / EMA_WEIGHTS
    if not path.is_file():
        return False
    try:
        load_model(ema, str(path), device=str(device))
        return True
    except Exception as err:
        raise ConfigError(
            f"{path}: cannot load the EMA weights ({type(err).__name__}: {err}); "
            "delete the checkpoint to resume from the previous one"
        ) from None


def prune(directory: Path, keep_last: int, keep_steps: set[int] = frozenset()) -> None:
    """Delete all but the newest `keep_last` checkpoints (and those in `keep_steps`)."""
    checkpoints = list_checkpoints(directory)
    for ckpt in checkpoints[: max(len(checkpoints) - keep_last, 0)]:
        if ckpt.step not in keep_steps:
            shutil.rmtree(ckpt.path, ignore_errors=True)
    for stale in directory.glob(".tmp-step_*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)


def read_best(directory: Path) -> dict[str, Any] | None:
    path = directory / "best.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_best(directory: Path, step: int, metric: str, value: float) -> None:
    atomic_write_text(directory / "best.json", json.dumps({"step": step, metric: value}) + "\n")


def average_checkpoints(checkpoints: list[Checkpoint], out_file: Path) -> Path:
    """Average the weights of `checkpoints` element-wise into `out_file` (§6.1: the paper
    averages the last 5 checkpoints for base models, the last 20 for big)."""
    if not checkpoints:
        raise ConfigError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for ckpt in checkpoints:
        for name, tensor in load_file(str(ckpt.path / WEIGHTS)).items():
            acc = total.setdefault(name, torch.zeros_like(tensor, dtype=torch.float64))
            acc += tensor.double()
    reference = load_file(str(checkpoints[-1].path / WEIGHTS))
    averaged = {
        name: (acc / len(checkpoints)).to(reference[name].dtype) for name, acc in total.items()
    }
    with atomic_path(out_file) as tmp:
        save_file(averaged, str(tmp))
    return out_file


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk so a rename after it cannot expose missing data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
