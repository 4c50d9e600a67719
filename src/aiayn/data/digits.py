"""The embedded image data set: scikit-learn's handwritten digits (`sklearn.datasets.load_digits`).

1,797 grey 8×8 images of the digits 0–9 (UCI "Optical Recognition of Handwritten Digits",
pixel values 0–16), shipped inside the scikit-learn wheel: no download. The split is fixed:
450 test images and 1,347 training images, stratified by class, drawn with `split_seed`
(recorded in the run's task_config.json); the same seed gives the same split on any machine.
"""

from __future__ import annotations

import numpy as np
import torch

from aiayn.data.image_set import ImageSet

TEST_SIZE = 450  # → 1,347 training images
DIGIT_NAMES = tuple(str(d) for d in range(10))


def load_digits_split(split_seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(train, test): 1,347 and 450 images (N, 1, 8, 8) uint8, labels 0–9, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0–16 → 0–255, exactly: 16 levels of ink become evenly spaced grey values
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    index = np.arange(len(pixels))
    train, test = train_test_split(
        index, test_size=TEST_SIZE, stratify=digits.target, random_state=split_seed
    )

    def subset(rows: np.ndarray, part: str) -> ImageSet:
        rows = np.sort(rows)
        return ImageSet(
            torch.from_numpy(pixels[rows][:, None].copy()),  # (N, 1, 8, 8)
            torch.from_numpy(digits.target[rows].astype(np.int64)),  # (N,)
            DIGIT_NAMES,
            f"digits ({part}, split seed {split_seed})",
        )

    return subset(train, "train"), subset(test, "test")


def digits_arrays(split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same split as flat float arrays for scikit-learn models: x (N, 64) in [0, 1], y (N,)
    — (x_train, y_train, x_test, y_test)."""
    train, test = load_digits_split(split_seed)
    flat = lambda s: s.images.reshape(len(s), -1).numpy().astype(np.float64) / 255.0  # noqa: E731
    return flat(train), train.labels.numpy(), flat(test), test.labels.numpy()


__all__ = ["DIGIT_NAMES", "TEST_SIZE", "digits_arrays", "load_digits_split"]
