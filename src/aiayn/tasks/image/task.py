"""`ImageTask`: the Trainer's view of training an image classifier. A batch is `batch_size`
images drawn afresh each epoch, shifted (and flipped) at random, normalised; the loss is the
label-smoothed cross-entropy of each image's class; validation reports the unsmoothed loss,
accuracy, macro F1 and MCC.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.data.image_set import ImageSet
from aiayn.data.image_transforms import Normalization, random_hflip, random_shift
from aiayn.data.labelled import LabelSet, save_labels
from aiayn.data.shuffled_batches import ShuffledBatchSampler
from aiayn.evaluate.classification import classification_scores
from aiayn.models.serialization import save_pretrained
from aiayn.models.vision import VisionTransformer
from aiayn.tasks.image.config import ImageConfig, higher_is_better
from aiayn.train.loss import LossOutput

Batch = tuple[Tensor, Tensor]  # images (B, C, S, S) float, labels (B,) long


class ImageTask:
    """The `TrainingTask` of an image classifier on a `VisionTransformer`."""

    def __init__(
        self,
        model: VisionTransformer,
        train: ImageSet,
        valid: ImageSet,
        normalization: Normalization,
        config: ImageConfig | None = None,
        seed: int = 1,
    ) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.normalization, self.seed = normalization, seed
        self.config = config or ImageConfig()
        self.labels = LabelSet(train.names)

    # --- TrainingTask -------------------------------------------------------------------------

    def train_sampler(self, rank: int, world_size: int) -> ShuffledBatchSampler:
        return ShuffledBatchSampler(len(self.train), self.config.batch_size, self.seed, rank,
                                    world_size)  # fmt: skip

    def collate(self, indices: list[int], device: torch.device) -> Batch:
        """Augmented, normalised images and their labels. The shifts and flips draw from
        torch's default generator, which the Trainer seeds and checkpoints."""
        images = self.train.images[indices]  # (B, C, S, S) uint8
        images = random_shift(images, self.config.shift)
        if self.config.hflip:
            images = random_hflip(images)
        return self.normalization(images.to(device)), self.train.labels[indices].to(device)

    def set_progress(self, step: int, minutes: float) -> None:
        """Nothing in the loss changes as training goes."""

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        images, labels = batch
        logits = model(images).float()  # (B, K), through any wrapper
        loss = F.cross_entropy(
            logits, labels, reduction="sum", label_smoothing=self.config.label_smoothing
        )
        nll = F.cross_entropy(logits.detach(), labels, reduction="sum")
        return LossOutput(loss, nll, int(labels.numel()))

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Loss per image, accuracy, macro F1 and MCC on the validation images."""
        device = next(model.parameters()).device
        nats, predicted = 0.0, []
        for start in range(0, len(self.valid), self.config.batch_size):
            images = self.valid.images[start : start + self.config.batch_size]
            labels = self.valid.labels[start : start + self.config.batch_size].to(device)
            logits = model(self.normalization(images.to(device))).float()  # (B, K)
            nats += float(F.cross_entropy(logits, labels, reduction="sum"))
            predicted += logits.argmax(dim=-1).tolist()
        gold = self.valid.labels.tolist()
        scores = classification_scores(gold, predicted, len(self.labels))
        return {"loss": nats / max(len(gold), 1), **scores}

    def higher_is_better(self, metric: str) -> bool:
        return higher_is_better(metric)

    def export(self, model: nn.Module, directory: Path) -> None:
        save_pretrained(model, directory)
        self.normalization.save(directory)
        save_labels(self.labels, directory)


__all__ = ["ImageTask"]
