"""Users' images in the ImageFolder layout, read with Pillow:

    root/
      cat/  a.jpg  b.png …
      dog/  c.jpeg …

Each sub-folder is a class (its name the label; classes sorted by name, as torchvision's
`ImageFolder` does); the images in it are its examples (.png, .jpg, .jpeg, .bmp, .gif, .webp;
other files are ignored). Every image is converted to RGB and resized to size × size
(bilinear), and all are held in memory as uint8: meant for data sets that fit (tens of
thousands of small images).

A corrupt or unreadable image is skipped and counted, with one warning naming the skipped
files, never a crash; a folder with no class sub-folders or no images is a one-line DataError
naming it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from aiayn.data.image_set import ImageSet
from aiayn.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_SHOWN = 5  # skipped files named in the warning; the rest are counted


def load_image(path: str | os.PathLike, size: int, channels: int = 3) -> np.ndarray:
    """One image file as (channels, size, size) uint8: converted to RGB (or grey for 1
    channel) and resized bilinearly.

    Raises:
        DataError: no such file, or not an image Pillow can read (the file named).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.array(img, dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None
    if channels == 1:
        return pixels[None]  # (1, S, S)
    return pixels.transpose(2, 0, 1).copy()  # (H, W, C) -> (C, S, S)


def read_image_folder(
    root: str | os.PathLike, size: int, channels: int = 3, names: tuple[str, ...] | None = None
) -> ImageSet:
    """Every readable image under root/CLASS/, resized to size × size.

    `names`: the classes the ids refer to (a validation folder must use the training
    folder's); default: the sub-folders' names, sorted.

    Raises:
        DataError: `root` is missing, has no class folders or no readable image, or holds a
            class that `names` lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder; give a folder of class sub-folders")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders; lay images out as {root}/CLASS_NAME/image.png")
    names = tuple(classes) if names is None else names
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise DataError(
            f"{root}: class folder(s) {', '.join(unknown)} not among the training classes "
            f"({', '.join(names)})"
        )
    pixels, labels, paths, skipped = [], [], [], []
    for name in classes:
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            try:
                pixels.append(load_image(path, size, channels))
            except DataError:
                skipped.append(str(path))
                continue
            labels.append(names.index(name))
            paths.append(str(path))
    if skipped:
        shown = ", ".join(skipped[:_SHOWN]) + (
            f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
        )
        log.warning("%s: skipped %d unreadable image(s): %s", root, len(skipped), shown)
    if not pixels:
        raise DataError(
            f"{root}: no readable images ({', '.join(IMAGE_SUFFIXES)}) in its class folders"
        )
    return ImageSet(
        torch.from_numpy(np.stack(pixels)),  # (N, C, S, S)
        torch.tensor(labels, dtype=torch.long),
        names,
        str(root),
        paths,
    )


__all__ = ["IMAGE_SUFFIXES", "load_image", "read_image_folder"]
