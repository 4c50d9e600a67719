"""`train_image`: everything `aiayn train image` does, as one function.

    from aiayn.models import presets
    from aiayn.tasks.image import ImageConfig, train_image
    from aiayn.train.config import TrainConfig

    train_image(None, None, "runs/digits", presets.vit_tiny(image_size=8, patch_size=2),
                TrainConfig(schedule="cosine"…), ImageConfig(data="digits"))
    train_image("photos/train", "photos/valid", "runs/photos", presets.vit_tiny(), …)

The run directory becomes a model directory (config.json, model.safetensors,
image_preprocessing.json, labels.json) for `aiayn classify` and `aiayn.classify_images`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aiayn.tasks.image.config import ImageConfig, higher_is_better

if TYPE_CHECKING:
    from aiayn.config import VisionConfig
    from aiayn.data.image_set import ImageSet
    from aiayn.train.config import TrainConfig
    from aiayn.train.trainer import TrainResult

log = logging.getLogger(__name__)


def train_image(
    train: str | os.PathLike | None,
    valid: str | os.PathLike | None,
    out_dir: str | Path,
    model_config: VisionConfig,
    train_config: TrainConfig,
    task_config: ImageConfig | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Train an image classifier from scratch; return the Trainer's result.

    Data: `task_config.data = "digits"` (the embedded set; `train` and `valid` None), or
    ImageFolder directories `train` and `valid` (root/CLASS/image.png), resized to the model's
    image size. The model takes the data's channels and classes; the normalisation is the
    training images' per-channel mean and std, saved with the model.

    Raises:
        DataError: a missing or empty folder (named), a validation class the training data
            lacks.
        ConfigError: a bad option, a model that is not a vision one, data given twice or not
            at all, or `out_dir` holding another run (without `resume`).
    """

    import torch

    from aiayn.config import VisionConfig
    from aiayn.data.image_transforms import Normalization
    from aiayn.data.labelled import load_labels, save_labels
    from aiayn.errors import ConfigError
    from aiayn.models.vision import VisionTransformer
    from aiayn.tasks.image.task import ImageTask
    from aiayn.tasks.run_dir import check_start, write_run_files
    from aiayn.train.trainer import Trainer

    task_config = task_config or ImageConfig()
    out_dir = check_start(  # fail before reading data
        out_dir, resume, model_config, VisionConfig,
        "an image classifier needs a vision model config (a preset such as vit-tiny, "
        "vit-small, vit-base)", higher_is_better, train_config.best_metric,
    )  # fmt: skip
    if resume:
        model_config = VisionConfig.load(out_dir / "config.json")
    train_set, valid_set = _read_data(train, valid, task_config, model_config.image_size)
    if resume:
        normalization = Normalization.load(out_dir)
        saved = load_labels(out_dir)
        if saved.names != train_set.names:
            raise ConfigError(
                f"{out_dir}: trained on classes {', '.join(saved.names)}, the "
                f"data has {', '.join(train_set.names)}; resume on the same data"
            )
    else:
        normalization = Normalization.of(train_set.images)
        model_config = model_config.replace(
            channels=train_set.channels, num_labels=len(train_set.names)
        )

    torch.manual_seed(train_config.seed)  # the same initial weights for the same seed
    model = VisionTransformer(model_config)
    task = ImageTask(model, train_set, valid_set, normalization, task_config,
                     seed=train_config.seed)  # fmt: skip
    trainer = Trainer(
        model, task, train_config, out_dir, progress=progress, d_model=model_config.d_model
    )
    record = {**task_config.to_dict(), "train": _name(train), "valid": _name(valid)}
    write_run_files(out_dir, resume, normalization, model_config, record, trainer.dist.is_main)
    if trainer.dist.is_main and not resume:
        save_labels(task.labels, out_dir)
    log.info(
        "image classifier (%s mixer): %.2fM parameters, %d classes; %d training and %d "
        "validation images of %d×%d, %d tokens each",
        model_config.mixer, model.num_parameters() / 1e6, len(task.labels), len(train_set),
        len(valid_set), model_config.image_size, model_config.image_size, model_config.num_tokens,
    )  # fmt: skip
    return trainer.fit(resume=resume)


def _name(path: str | os.PathLike | None) -> str | None:
    return None if path is None else str(path)


def _read_data(
    train: str | os.PathLike | None,
    valid: str | os.PathLike | None,
    config: ImageConfig,
    size: int,
) -> tuple[ImageSet, ImageSet]:
    """(train, valid) images at `size` × `size`, from the embedded set or the folders."""
    from aiayn.data.digits import load_digits_split
    from aiayn.data.image_folder import read_image_folder
    from aiayn.data.image_transforms import resize_images
    from aiayn.errors import ConfigError

    if config.data == "digits":
        if train is not None or valid is not None:
            raise ConfigError("give --data digits or --train/--valid folders, not both")
        train_set, valid_set = load_digits_split(config.split_seed)
        for part in (train_set, valid_set):
            part.images = resize_images(part.images, size)
        return train_set, valid_set
    if train is None or valid is None:
        raise ConfigError("give --train and --valid image folders (root/CLASS/image.png), "
                          "or --data digits")  # fmt: skip
    train_set = read_image_folder(train, size)
    return train_set, read_image_folder(valid, size, names=train_set.names)


__all__ = ["train_image"]
