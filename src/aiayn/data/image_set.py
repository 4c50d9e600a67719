"""`ImageSet`: labelled images held in memory, all of one square size, as uint8 pixels.

What the image task trains on and what `aiayn classify` reads images into: every reader
(`digits`, `image_folder`) returns one. Pixels stay uint8 (0–255) until a batch is made, a
quarter of the memory of floats; normalisation and augmentation act per batch
(`aiayn.data.image_transforms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ImageSet:
    """Images (N, C, S, S) uint8, their class ids (N,) long, the class names, and where they
    came from (`source`, and each image's file when read from files)."""

    images: Tensor  # (N, C, S, S) uint8
    labels: Tensor  # (N,) int64 class ids into `names`
    names: tuple[str, ...]  # class names, id order
    source: str
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be (N, C, S, S) uint8, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")  # fmt: skip
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        """The side of the (square) images in pixels."""
        return self.images.shape[-1]


__all__ = ["ImageSet"]
