"""`ClassifyTask`: the Trainer's view of fine-tuning an encoder to classify sequences. Batches
are examples of similar length ([CLS] text [SEP] (pair [SEP]), right-padded); the loss is the
cross-entropy of each example's class; validation reports loss, accuracy, macro F1 and MCC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.data.batching import BatchPlan, TokenBatchSampler, plan_batches
from aiayn.data.labelled import LabelSet, save_labels
from aiayn.evaluate.classification import classification_scores
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.serialization import save_pretrained
from aiayn.tasks.classify.config import ClassifyConfig, higher_is_better
from aiayn.tasks.mlm.data import pad_sequences
from aiayn.tokenizers.bert import BertTokenizer
from aiayn.train.loss import LossOutput

Batch = tuple[Tensor, Tensor, Tensor]  # ids (B, T), segments (B, T), labels (B,)


@dataclass
class Examples:
    """Encoded examples: ids and segments (1-D int arrays, specials included) and class ids."""

    ids: list[np.ndarray]
    segments: list[np.ndarray]
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def encode(
        cls,
        tokenizer: BertTokenizer,
        texts: list[str],
        pairs: list[str] | None,
        labels: list[int],
        max_len: int,
    ) -> Examples:
        encoded = tokenizer.encode_batch(texts, pairs, max_len=max_len)
        return cls(
            [np.asarray(e.ids, dtype=np.int64) for e in encoded],
            [np.asarray(e.segments, dtype=np.int64) for e in encoded],
            np.asarray(labels, dtype=np.int64),
        )

    def lengths(self) -> np.ndarray:
        """Each example's length as the (N, 2) pairs batch planning takes (one side each)."""
        n = np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))
        return np.stack([n, n], axis=1)

    def max_tokens(self, batch_size: int) -> int:
        """A token budget no batch of `batch_size` examples exceeds: batches by count alone."""
        return batch_size * max((len(x) for x in self.ids), default=1)

    def plan(self, batch_size: int) -> BatchPlan:
        """Batches of at most `batch_size` examples of similar length (little padding)."""
        return plan_batches(self.lengths(), self.max_tokens(batch_size), batch_size)

    def batch(self, indices: list[int], pad_id: int) -> Batch:
        return (
            pad_sequences([self.ids[i] for i in indices], pad_id),  # (B, T)
            pad_sequences([self.segments[i] for i in indices], 0),  # (B, T)
            torch.from_numpy(self.labels[indices]),  # (B,)
        )


def classify_loss(model: nn.Module, batch: Batch) -> LossOutput:
    """Summed cross-entropy of each example's class (in fp32). Shape: labels (B,) long."""
    ids, segments, labels = batch
    logits = model(ids, segments, head="classify").float()  # (B, K), through any wrapper
    loss = F.cross_entropy(logits, labels, reduction="sum")
    return LossOutput(loss, loss.detach(), int(labels.numel()))


class ClassifyTask:
    """The `TrainingTask` of a sequence classifier on an `EncoderOnly` model."""

    def __init__(
        self,
        model: EncoderOnly,
        train: Examples,
        valid: Examples,
        tokenizer: BertTokenizer,
        labels: LabelSet,
        config: ClassifyConfig | None = None,
        seed: int = 1,
    ) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.tokenizer, self.labels, self.seed = tokenizer, labels, seed
        self.config = config or ClassifyConfig()

    # --- TrainingTask -------------------------------------------------------------------------

    def train_sampler(self, rank: int, world_size: int) -> TokenBatchSampler:
        size = self.config.batch_size
        return TokenBatchSampler(
            self.train.lengths(), self.train.max_tokens(size), max_sentences=size,
            seed=self.seed, rank=rank, world_size=world_size,
        )  # fmt: skip

    def collate(self, indices: list[int], device: torch.device) -> Batch:
        return tuple(t.to(device) for t in self.train.batch(list(indices), self.tokenizer.pad_id))

    def set_progress(self, step: int, minutes: float) -> None:
        """Nothing in the classification loss changes as training goes."""

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        return classify_loss(model, batch)

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Loss per example, accuracy, macro F1 and MCC on the validation examples."""
        device = next(model.parameters()).device
        nats, predicted, gold = 0.0, [], []
        for chunk in self.valid.plan(self.config.batch_size):
            ids, segments, labels = (
                t.to(device) for t in self.valid.batch(chunk, self.tokenizer.pad_id)
            )
            logits = model.classify(ids, segments).float()  # (B, K)
            nats += float(F.cross_entropy(logits, labels, reduction="sum"))
            predicted += logits.argmax(dim=-1).tolist()
            gold += labels.tolist()
        scores = classification_scores(gold, predicted, len(self.labels))
        return {"loss": nats / max(len(gold), 1), **scores}

    def higher_is_better(self, metric: str) -> bool:
        return higher_is_better(metric)

    def export(self, model: nn.Module, directory: Path) -> None:
        save_pretrained(model, directory)
        self.tokenizer.save(directory)
        save_labels(self.labels, directory)


__all__ = ["ClassifyTask", "Examples", "classify_loss"]
