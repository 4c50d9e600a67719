"""What happens to a batch of uint8 images before the model: light augmentation in training,
then normalisation — the few transforms a small image task needs, written out on tensors.

- `random_shift`: pad by k pixels (zeros, black) and crop back at a random offset per image,
  a shift of up to ±k pixels (the "random crop with padding" of CIFAR training);
- `random_hflip`: mirror each image left-right with probability ½ — for photographs, not for
  digits or text, whose mirror images are other shapes;
- `Normalization`: x ↦ (x/255 − mean) / std per channel, with the training set's statistics,
  saved with the model (`image_preprocessing.json`) so that classifying applies the same.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text, read_json_object

PREPROCESSING_FILE = "image_preprocessing.json"


def resize_images(images: Tensor, size: int) -> Tensor:
    """Images resized bilinearly to size × size (unchanged at that size already).

    Shape: images (N, C, H, W) uint8 -> (N, C, size, size) uint8.
    """
    if images.shape[-2:] == (size, size):
        return images
    out = torch.nn.functional.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Each image shifted by a random (dy, dx) in [-pad, pad]², the uncovered border black.

    Shape: images (B, C, S, S) -> the same (dtype kept).
    """
    if pad <= 0:
        return images
    B, _, S, _ = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))  # (B, C, S+2p, S+2p)
    dy = torch.randint(0, 2 * pad + 1, (B,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (B,), generator=generator)
    steps = torch.arange(S)
    rows = (dy[:, None] + steps).to(images.device)  # (B, S)
    cols = (dx[:, None] + steps).to(images.device)  # (B, S)
    b = torch.arange(B, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, S, S, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, S, S)


def random_hflip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each image mirrored left-right with probability ½. Shape: (B, C, H, W) -> the same."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of pixel values in [0, 1], and the image size the model takes."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, images: Tensor) -> Normalization:
        """The statistics of a training set. Shape: images (N, C, S, S) uint8."""
        x = images.float().div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)  # (C, N·S·S)
        std = x.std(dim=1).clamp(min=1e-3)  # a constant channel stays finite
        return cls(images.shape[-1], tuple(x.mean(dim=1).tolist()), tuple(std.tolist()))

    @property
    def channels(self) -> int:
        return len(self.mean)

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 pixels -> normalised floats. Shape: (B, C, S, S) uint8 -> (B, C, S, S) float32."""
        mean = torch.tensor(self.mean, device=images.device)[:, None, None]  # (C, 1, 1)
        std = torch.tensor(self.std, device=images.device)[:, None, None]
        return (images.float() / 255.0 - mean) / std

    def save(self, directory: str | os.PathLike) -> None:
        atomic_write_text(Path(directory) / PREPROCESSING_FILE,
                          json.dumps(asdict(self), indent=2) + "\n")  # fmt: skip

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Normalization:
        path = Path(directory) / PREPROCESSING_FILE
        if not path.is_file():
            raise ConfigError(f"{directory}: no {PREPROCESSING_FILE}; is this an image model?")
        data = read_json_object(path, "image preprocessing file")
        try:
            return cls(int(data["image_size"]), tuple(data["mean"]), tuple(data["std"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{path}: malformed ({err}); restore the file") from None


__all__ = ["PREPROCESSING_FILE", "Normalization", "random_hflip", "random_shift", "resize_images"]
