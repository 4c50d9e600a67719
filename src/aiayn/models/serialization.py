"""Model directories: `config.json` (with schema version) + `model.safetensors`.

Loading never unpickles code: weights are safetensors, the config is JSON. Writes go to a
temporary file first and are renamed into place, so an interrupted save leaves the previous
files intact. A checkpoint directory of a training run (`RUN/checkpoints/step_N`) holds
weights only and loads with the run's config (see `run_dir_of_checkpoint`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from aiayn.config import load_config
from aiayn.devices import resolve_device
from aiayn.errors import ConfigError
from aiayn.io import atomic_path
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import EncoderDecoder

#: The model class of each `arch` in config.json (a plain dict: a new family is one line).
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "encoder_decoder": EncoderDecoder,
    "decoder_only": DecoderOnly,
}

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHECKPOINTS_DIR = "checkpoints"  # a training run's checkpoints: RUN/checkpoints/step_N


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write `model`'s config and weights into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_model(model, str(tmp))  # save_model (not save_file) drops tied weights' aliases
    model.config.save(directory / CONFIG_NAME)
    return directory


def run_dir_of_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The run directory whose config and tokenizer a checkpoint directory uses, or None.

    `aiayn train` writes RUN/config.json, RUN/tokenizer.json and, per checkpoint,
    RUN/checkpoints/step_N/model.safetensors; a directory with its own config is no checkpoint.
    """
    directory = Path(directory)
    run_dir = directory.parent.parent
    if (
        not (directory / CONFIG_NAME).exists()
        and directory.parent.name == CHECKPOINTS_DIR
        and (run_dir / CONFIG_NAME).is_file()
    ):
        return run_dir
    return None


def load_pretrained(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Rebuild the model saved in `directory` by `save_pretrained` (or a run's checkpoint
    directory), in eval mode, as the class its config's `arch` names."""
    device = resolve_device(device)
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such model directory")
    config_path = (run_dir_of_checkpoint(directory) or directory) / CONFIG_NAME
    config = load_config(config_path)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ConfigError(f"{weights}: weights file missing; was the model saved completely?")
    model = ARCHITECTURES[config.arch](config)
    try:
        mismatch = _shape_mismatch(model, weights)
        if mismatch:
            raise ConfigError(f"{weights} does not fit {config_path}: {mismatch}")
        load_model(model, weights, device=str(device))
    except (RuntimeError, OSError, SafetensorError) as err:
        raise ConfigError(f"{weights}: cannot load weights ({err})") from None
    return model.to(device).eval()


def _shape_mismatch(model: nn.Module, weights: Path) -> str | None:
    """One line on how the tensors in `weights` differ from those `model` (built from the
    config) expects, or None where every shape fits. load_model's own message lists every
    tensor, dozens of lines that read as if the weights were at fault."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    with safe_open(str(weights), framework="pt") as f:
        stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 (a safe_open is no dict)
    differ = [name for name in expected if name in stored and stored[name] != expected[name]]
    if not differ:
        return None  # missing or extra tensors (tied aliases among them): load_model decides
    first = differ[0]
    return (
        f"{len(differ)} tensor(s) have other shapes (first: {first}: the config builds "
        f"{expected[first]}, the file holds {stored[first]}); the config.json is not the one "
        "these weights were trained with: restore it, or copy the model directory whole"
    )
