"""Training checkpoints: written atomically, found again after any crash, pruned, averaged.

Layout under `<out>/checkpoints/`:

    step_00001000/           one complete checkpoint
        model.safetensors    weights (safetensors: loading never unpickles code), with their
                             digest, checked on load (`aiayn.models.serialization`)
        ema.safetensors      the moving average of the weights, when the run keeps one
        training_state.pt    optimiser, RNG, data position, counters (tensors and plain types,
                             loaded with `weights_only=True`)
        meta.json            step, epoch, validation metrics ("interrupted": the signal, for a
                             checkpoint written on SIGTERM/SIGINT between validations)
    best.json                which step scored best on validation

A checkpoint is written into a hidden `.tmp-…` directory, every file flushed to disk, and
renamed into place in one `os.rename`, so a `kill -9` (or a full disk) at any moment leaves
either the previous checkpoints or the new complete one, never a half-written directory under
a real name. Re-saving a step moves the old directory aside first (`.old-…`), which stands in
for the step until the new one is in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model
from torch import nn

from aiayn.errors import ConfigError
from aiayn.io import (
    atomic_path,
    atomic_write_text,
    disk_full_error,
    fsync_path,
    is_disk_full,
)
from aiayn.models.serialization import (
    CHECKPOINTS_DIR,
    WEIGHTS_NAME,
    save_weights,
    verify_weights,
)

log = logging.getLogger(__name__)

# The model directory's file name, so a checkpoint directory loads as a model
# (serialization.run_dir_of_checkpoint) and averaging writes straight into a model directory.
WEIGHTS = WEIGHTS_NAME
EMA_WEIGHTS = "ema.safetensors"
STATE = "training_state.pt"
META = "meta.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
# a checkpoint moved aside while the same step is saved anew: complete, and the step's
# stand-in should a crash come between the two renames
_OLD_DIR = re.compile(r"^\.old-step_(\d+)-\d+$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / META).read_text(encoding="utf-8"))

    @property
    def interrupted(self) -> bool:
        """Written on a signal between validations (not one of the run's regular checkpoints,
        which pruning counts and averaging averages)."""
        try:
            return bool(self.meta().get("interrupted"))
        except (OSError, ValueError):  # unreadable: count it as regular, prune it as such
            return False


def list_checkpoints(directory: Path) -> list[Checkpoint]:
    """Complete checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found: dict[int, Checkpoint] = {}
    stand_ins: dict[int, Checkpoint] = {}
    for child in directory.iterdir():
        match = _STEP_DIR.match(child.name) or _OLD_DIR.match(child.name)
        if match and (child / META).is_file():  # META is written last
            step = int(match.group(1))
            into = found if match.re is _STEP_DIR else stand_ins
            into[step] = Checkpoint(step, child)
    for step, old in stand_ins.items():
        found.setdefault(step, old)
    return sorted(found.values(), key=lambda c: c.step)


def check_run_dir(out_dir: Path, resume: bool) -> list[Checkpoint]:
    """The checkpoints of the run in `out_dir`, after checking they fit the request: resuming
    needs at least one; a fresh run must not overwrite another run's; `out_dir` (or a folder
    above it) must not be a file."""
    for path in (out_dir, *out_dir.absolute().parents):
        if path.exists():
            if not path.is_dir():
                where = "" if path == out_dir else f" ({path} is)"
                raise ConfigError(
                    f"{out_dir}: the output must be a directory, but it is a file{where}; "
                    "choose another --out"
                )
            break
    found = list_checkpoints(out_dir / CHECKPOINTS_DIR)
    if resume and not found:
        raise ConfigError(f"{out_dir}: no checkpoint to resume from; drop --resume to start afresh")
    if not resume and found:
        raise ConfigError(
            f"{out_dir} already holds checkpoints; pass --resume to continue that run, or "
            "choose another --out directory"
        )
    return found


def check_out_dir(out_dir: Path, resume: bool, force: bool = False) -> list[Checkpoint]:
    """`check_run_dir`, and for a fresh run: `out_dir` is new or empty, unless `force` (then
    the run replaces files of the same name in it). A directory holding files but no
    checkpoints is no run to resume: most likely someone's model directory or data."""
    found = check_run_dir(out_dir, resume)
    if not resume and not force and out_dir.is_dir():
        held = sorted(
            p.name for p in out_dir.iterdir() if not p.name.startswith(".") and not _token_data(p)
        )
        if held:
            shown = ", ".join(held[:4]) + (", …" if len(held) > 4 else "")
            raise ConfigError(
                f"{out_dir} is not empty ({shown}) and holds no run to resume (no checkpoints); "
                "choose another --out, or pass --force to train into it anyway (the run "
                "replaces files of the same name and starts a new metrics.jsonl)"
            )
    return found


def _token_data(path: Path) -> bool:
    """Whether `path` is a run's own `data/` of token files (`aiayn.data.token_file`). Under
    torchrun every rank builds them as soon as it starts, so rank 0 may find another rank's
    token files in a fresh --out before it has written anything itself."""
    if path.name != "data" or not path.is_dir():
        return False
    return all(
        p.name.startswith(".") or p.name.endswith((".tokens", ".tokens.json"))
        for p in path.iterdir()
    )


def save_checkpoint(
    directory: Path,
    step: int,
    model: nn.Module,
    training_state: dict[str, Any],
    meta: dict[str, Any],
    ema: nn.Module | None = None,
) -> Checkpoint:
    """Write checkpoint `step` atomically and return it (with `ema`, the model holding the
    moving average of the weights, saved as the model is). A full disk raises DiskFullError
    and leaves the earlier checkpoints as they were."""
    final = directory / f"step_{step:08d}"
    tmp = directory / f".tmp-step_{step:08d}-{os.getpid()}"
    old = directory / f".old-step_{step:08d}-{os.getpid()}"
    writing = ""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        writing = WEIGHTS
        save_weights(model, tmp / WEIGHTS)
        if ema is not None:
            writing = EMA_WEIGHTS
            save_weights(ema, tmp / EMA_WEIGHTS)
        writing = STATE
        with open(tmp / STATE, "wb") as f:  # a Python file: a full disk raises ENOSPC
            torch.save(training_state, f)
        writing = META
        (tmp / META).write_text(json.dumps({"step": step, **meta}, indent=2), encoding="utf-8")
        writing = ""
        for child in tmp.iterdir():
            fsync_path(child)
        fsync_path(tmp)
        if final.exists():  # re-saving the same step (e.g. final save after a validation)
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)  # the step's stand-in until the new one is in place
        os.rename(tmp, final)
        fsync_path(directory)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.is_dir() and not final.exists():  # put the old one back under its name
            with contextlib.suppress(OSError):
                os.rename(old, final)
        if is_disk_full(err):
            raise disk_full_error(
                final, writing or "the checkpoint",
                "the checkpoint was not written and the earlier ones are intact: free some "
                "space, then continue the run with --resume",
            ) from err  # fmt: skip
        raise
    shutil.rmtree(old, ignore_errors=True)
    return Checkpoint(step, final)


def load_checkpoint(
    checkpoint: Checkpoint, model: nn.Module, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load weights into `model` (checked against their digest) and return the training
    state."""
    try:
        verify_weights(checkpoint.path / WEIGHTS)
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
        verify_weights(path)
        load_model(ema, str(path), device=str(device))
        return True
    except Exception as err:
        raise ConfigError(
            f"{path}: cannot load the EMA weights ({type(err).__name__}: {err}); "
            "delete the checkpoint to resume from the previous one"
        ) from None


def prune(directory: Path, keep_last: int, keep_steps: set[int] = frozenset()) -> None:
    """Delete all but the newest `keep_last` regular checkpoints (and those in `keep_steps`),
    and the checkpoints written on an interrupt that a newer one has superseded: a resumed
    run then keeps (and averages) the checkpoints an uninterrupted one would."""
    checkpoints = list_checkpoints(directory)
    regular = [c for c in checkpoints if not c.interrupted]
    doomed = [c for c in regular[: max(len(regular) - keep_last, 0)] if c.step not in keep_steps]
    doomed += [c for c in checkpoints[:-1] if c.interrupted and c.step not in keep_steps]
    for ckpt in doomed:
        shutil.rmtree(ckpt.path, ignore_errors=True)
    live = {c.path for c in list_checkpoints(directory)}
    for stale in (*directory.glob(".tmp-step_*"), *directory.glob(".old-step_*")):
        if stale not in live:  # left by a crash mid-save (an .old- standing in is kept)
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
        verify_weights(ckpt.path / WEIGHTS)
        for name, tensor in load_file(str(ckpt.path / WEIGHTS)).items():
            acc = total.setdefault(name, torch.zeros_like(tensor, dtype=torch.float64))
            acc += tensor.double()
    reference = load_file(str(checkpoints[-1].path / WEIGHTS))
    averaged = {
        name: (acc / len(checkpoints)).to(reference[name].dtype) for name, acc in total.items()
    }
    with atomic_path(out_file) as tmp:
        save_weights(averaged, tmp)
    return out_file
