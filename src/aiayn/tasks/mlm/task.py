"""`MLMTask`: the Trainer's view of masked-LM pretraining. Training batches are packed
sequences (`aiayn.tasks.mlm.data`) in token-bounded batches, masked anew at every collation
(`aiayn.data.masking`); the loss is the cross-entropy of the original token at every selected
position, computed only there (the vocabulary projection of the other 85% would be wasted).

Validation masks the validation sequences once, with a fixed seed, so every validation scores
the same positions: `loss` (nats per masked token), `ppl` and `accuracy`.

The Trainer's `tokens` and `tokens_per_s` count what the loss averages over: the masked
positions, ~15% of the input (`benchmarks/bert.py` reports input tokens).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.data.batching import TokenBatchSampler, plan_batches
from aiayn.data.masking import IGNORE, Masking
from aiayn.errors import ConfigError
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.serialization import save_pretrained
from aiayn.tasks.mlm.config import MLMConfig, higher_is_better
from aiayn.tasks.mlm.data import Packed, pad_sequences
from aiayn.tokenizers.bert import BertTokenizer
from aiayn.train.loss import LossOutput

Batch = tuple[Tensor, Tensor, Tensor]  # inputs (B, T), segments (B, T), targets (B, T)


def mlm_loss(model: nn.Module, batch: Batch) -> tuple[LossOutput, int]:
    """Summed cross-entropy over the selected positions (in fp32), and how many of them the
    model predicts exactly.

    Shape: inputs, segments, targets (B, T) long; targets IGNORE where not selected.
    """
    inputs, segments, targets = batch
    selected = targets != IGNORE  # (B, T)
    logits = model(inputs, segments, only=selected).float()  # (N, V): selected positions only
    gold = targets[selected]  # (N,)
    loss = F.cross_entropy(logits, gold, reduction="sum")
    correct = int((logits.argmax(dim=-1) == gold).sum())
    return LossOutput(loss, loss.detach(), int(gold.numel())), correct


class MLMTask:
    """The `TrainingTask` of masked-LM pretraining of an `EncoderOnly` model."""

    def __init__(
        self,
        model: EncoderOnly,
        train: Packed,
        valid: Packed,
        tokenizer: BertTokenizer,
        config: MLMConfig | None = None,
        seed: int = 1,
    ) -> None:
        self.model, self.train, self.valid, self.tokenizer = model, train, valid, tokenizer
        self.config = config = config or MLMConfig()
        self.seed = seed
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ConfigError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                f"{model.config.vocab_size}; build the model from the tokenizer's size"
            )
        self.masking = Masking(
            mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
            special_ids=frozenset(tokenizer.special_ids), rate=config.mask_rate,
        )  # fmt: skip
        self._valid_batches: list[Batch] | None = None

    # --- TrainingTask -------------------------------------------------------------------------

    def train_sampler(self, rank: int, world_size: int) -> TokenBatchSampler:
        return TokenBatchSampler(
            self.train.lengths(), self.config.max_tokens,
            seed=self.seed, rank=rank, world_size=world_size,
        )  # fmt: skip

    def collate(self, indices: list[int], device: torch.device) -> Batch:
        """Masked inputs, segments and targets of sequences `indices` (masked on the CPU with
        torch's global generator, which checkpoints restore)."""
        return tuple(t.to(device) for t in self._masked(self.train, indices, None))

    def set_progress(self, step: int, minutes: float) -> None:
        """Nothing in the masked-LM loss changes as training goes."""

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        return mlm_loss(model, batch)[0]

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Loss, perplexity and accuracy on the validation sequences' fixed masks."""
        device = next(model.parameters()).device
        if self._valid_batches is None:
            self._valid_batches = self._fixed_valid_batches()
        nats, correct, targets = 0.0, 0, 0
        for batch in self._valid_batches:
            out, right = mlm_loss(model, tuple(t.to(device) for t in batch))
            nats += float(out.nll)
            correct += right
            targets += out.n_tokens
        loss = nats / max(targets, 1)
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 50.0)),
            "accuracy": correct / max(targets, 1),
        }

    def higher_is_better(self, metric: str) -> bool:
        return higher_is_better(metric)

    def export(self, model: nn.Module, directory: Path) -> None:
        save_pretrained(model, directory)
        self.tokenizer.save(directory)

    # --- helpers ------------------------------------------------------------------------------

    def _masked(self, data: Packed, indices: list[int], generator: torch.Generator | None) -> Batch:
        ids = pad_sequences([data.ids[i] for i in indices], self.tokenizer.pad_id)  # (B, T)
        segments = pad_sequences([data.segments[i] for i in indices], 0)  # (B, T)
        words = None
        if self.config.whole_word_masking:
            words = pad_sequences([data.words[i] for i in indices], -1)  # (B, T)
        inputs, targets = self.masking.apply(ids, words, generator)
        return inputs, segments, targets

    def _fixed_valid_batches(self) -> list[Batch]:
        # similar lengths together (little padding), the same masks every validation
        plan = plan_batches(self.valid.lengths(), self.config.max_tokens)
        generator = torch.Generator().manual_seed(12345)
        return [self._masked(self.valid, batch, generator) for batch in plan]


__all__ = ["MLMTask", "mlm_loss"]
