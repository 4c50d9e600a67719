"""Model directories: `config.json` (with schema version) + `model.safetensors`.

Loading never unpickles code: weights are safetensors, the config is JSON. Writes go to a
temporary file first and are renamed into place, so an interrupted save leaves the previous
files intact. A checkpoint directory of a training run (`RUN/checkpoints/step_N`) holds
weights only and loads with the run's config (see `run_dir_of_checkpoint`).

Every weights file aiayn writes (`save_weights`) carries a SHA-256 of its tensors in the
safetensors header's metadata (`DIGEST_KEY`), checked on load (`verify_weights`): a flipped
bit in a copied file fails loudly instead of translating slightly worse. Files from before the
digest load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

# _remove_duplicate_names: save_model's own choice of which tied name to keep (private, but
# the only way to write exactly the tensors save_model would and digest them first)
from safetensors.torch import _remove_duplicate_names, load_model, save_file
from torch import Tensor, nn

from aiayn.config import load_config
from aiayn.devices import resolve_device
from aiayn.errors import ConfigError
from aiayn.io import atomic_path
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.vision import VisionTransformer

#: The model class of each `arch` in config.json (a plain dict: a new family is one line).
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "encoder_decoder": EncoderDecoder,
    "decoder_only": DecoderOnly,
    "encoder_only": EncoderOnly,
    "vision": VisionTransformer,
}

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHECKPOINTS_DIR = "checkpoints"  # a training run's checkpoints: RUN/checkpoints/step_N
#: The safetensors metadata key of the weights' digest (`weights_digest`).
DIGEST_KEY = "aiayn.weights_sha256"


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write `model`'s config and weights into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_weights(model, tmp)
    model.config.save(directory / CONFIG_NAME)
    return directory


def save_weights(weights: nn.Module | Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """Write a model's weights (or a dict of tensors) to `path` as safetensors, with their
    digest in the file's metadata. Written in place: the caller picks a temporary path.

    A model is saved as `safetensors.torch.save_model` saves it: tied weights once, under the
    name it keeps (so `load_model` restores the aliases), the dropped names in the metadata.
    """
    metadata: dict[str, str] = {}
    if isinstance(weights, nn.Module):
        state = weights.state_dict()
        for kept, aliases in _remove_duplicate_names(state).items():
            for alias in aliases:
                metadata[alias] = kept
                del state[alias]
    else:
        state = dict(weights)
    tensors = {name: t.detach().contiguous() for name, t in state.items()}
    metadata[DIGEST_KEY] = weights_digest(tensors)
    save_file(tensors, str(path), metadata=metadata)


def weights_digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over the tensors in name order: each one's name, dtype, shape and bytes. It
    depends on the values alone, not on how a file lays them out, so the digest of a state
    dict before saving equals the digest of the tensors read back from the file."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        _digest_tensor(h, name, tensors[name])
    return h.hexdigest()


def _digest_tensor(h: Any, name: str, tensor: Tensor) -> None:
    head = [name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)]
    h.update(json.dumps(head).encode() + b"\n")
    data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
    h.update(data.numpy())


def stored_digest(path: str | os.PathLike) -> str | None:
    """The digest in the metadata of safetensors file `path` (None: none, or no such file);
    reads the header alone."""
    if not Path(path).is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get(DIGEST_KEY)


def verify_weights(path: str | os.PathLike) -> bool:
    """Check the tensors in safetensors file `path` against the digest in its metadata: True
    if they match, False if the file has no digest (written before aiayn kept one). Reads one
    tensor at a time. Raises ConfigError naming the file when they differ."""
    with safe_open(str(path), framework="pt") as f:
        expected = (f.metadata() or {}).get(DIGEST_KEY)
        if expected is None:
            return False
        h = hashlib.sha256()
        for name in sorted(f.keys()):
            _digest_tensor(h, name, f.get_tensor(name))
    if h.hexdigest() != expected:
        raise ConfigError(
            f"{path}: weights are corrupt: checksum mismatch (the tensors differ from those "
            "written); re-copy or re-export the model"
        )
    return True


#: What each family is for, to point a user who gave the wrong kind of model at the right command.
_ARCH_USE = {
    "encoder_decoder": "a translation model (aiayn translate, aiayn evaluate)",
    "decoder_only": "a language model (aiayn generate)",
    "encoder_only": "a text encoder (aiayn classify on texts)",
    "vision": "an image classifier (aiayn classify on images)",
}


def arch_of(directory: str | os.PathLike) -> tuple[Path, str]:
    """(the directory holding the config, the model's `arch`) of the model in `directory`
    (itself, or the run of a checkpoint directory). Reads the config only: no weights.
    ConfigError naming the directory when there is no model there."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such model directory")
    home = run_dir_of_checkpoint(directory) or directory
    if not (home / CONFIG_NAME).is_file():
        raise ConfigError(f"{directory}: no {CONFIG_NAME}; is this a model directory?")
    return home, load_config(home / CONFIG_NAME).arch


def require_arch(directory: str | os.PathLike, arch: str) -> Path:
    """The directory holding the config of the model in `directory` (itself, or the run of a
    checkpoint directory), after checking its family is `arch`: ConfigError saying what the
    model is and which command takes it otherwise. Reads the config only: no weights."""
    home, found = arch_of(directory)
    if found != arch:
        raise ConfigError(
            f"{directory} holds {_ARCH_USE.get(found, found)}, not {_ARCH_USE.get(arch, arch)}"
        )
    return home


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
        verify_weights(weights)
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
