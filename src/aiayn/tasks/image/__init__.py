"""Image classification (ViT, PoolFormer): labelled images + VisionTransformer + cross-entropy.

- `config`: `ImageConfig`, the task's options, and the `METRICS` its validation reports;
- `task`: `ImageTask`, what the Trainer calls;
- `train`: `train_image`, on the embedded digits or on an ImageFolder of the user's.

The config and `train_image` import without torch (the command line builds its flags from
them).
"""

from typing import Any

from aiayn.tasks.image.config import METRICS, ImageConfig
from aiayn.tasks.image.train import train_image

__all__ = ["METRICS", "ImageConfig", "ImageTask", "train_image"]


def __getattr__(name: str) -> Any:
    if name == "ImageTask":
        from aiayn.tasks.image.task import ImageTask

        return ImageTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
