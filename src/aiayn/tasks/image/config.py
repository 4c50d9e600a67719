"""`ImageConfig`: what training an image classifier adds to a training run — the data (the
embedded digits or the user's folders), the batch, augmentation, label smoothing — and the
metrics it reports.

Light to import: the command line builds its flags from it without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from aiayn.config import check_field_types, option
from aiayn.errors import ConfigError

#: The metrics `ImageTask.validate` reports, each → whether higher is better.
METRICS: dict[str, bool] = {
    "loss": False,  # cross-entropy in nats per image (unsmoothed)
    "accuracy": True,
    "macro_f1": True,
    "mcc": True,
}


@dataclass(frozen=True)
class ImageConfig:
    """The options of image classification."""

    data: Literal["digits"] | None = option(
        "an embedded data set instead of --train/--valid folders: digits (scikit-learn's "
        "1,797 8×8 handwritten digits; a fixed stratified split, 1,347 train / 450 test, "
        "validated on the test part)",
        None,
    )
    split_seed: int = option("the seed of the digits' train/test split", 0)
    batch_size: int = option("images per micro-batch", 128)
    shift: int = option(
        "augmentation: pad by N pixels and crop back at a random offset (a random shift of up "
        "to N pixels); 0 = off",
        1,
    )
    hflip: bool = option(
        "augmentation: mirror images left-right at random (photographs; not digits or text)",
        False,
    )
    label_smoothing: float = option("label smoothing ε of the training loss", 0.1)

    def __post_init__(self) -> None:
        check_field_types(self, "image option")

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"image option '{name}' = {getattr(self, name)!r}: {why}")

        if self.batch_size <= 0:
            raise bad("batch_size", "must be positive")
        if self.shift < 0:
            raise bad("shift", "must be >= 0 (0 = no shifts)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise bad("label_smoothing", "must be in [0, 1)")
        if self.hflip and self.data == "digits":
            raise bad("hflip", "a mirrored digit is another shape (or none): leave flips off")

    def replace(self, **changes: Any) -> ImageConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "image", **dataclasses.asdict(self)}


def higher_is_better(metric: str) -> bool:
    """Whether a larger `metric` of image classification is better; ConfigError naming the
    metrics there are otherwise."""
    if metric not in METRICS:
        raise ConfigError(
            f"best_metric '{metric}' is not an image classification metric; choose one of "
            f"{', '.join(METRICS)}"
        )
    return METRICS[metric]
