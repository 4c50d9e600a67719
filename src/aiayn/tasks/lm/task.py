"""`LMTask`: the Trainer's view of language modelling. Training batches are windows of the
token stream (`aiayn.data.lm_blocks`), the loss is the cross-entropy of every next token, and
validation scores the whole validation stream once, in order.

Validation metrics (all lower is better):
- `loss`: nats per token, the mean of −ln p(next token) over every validation target;
- `ppl`: exp(loss), the perplexity per token;
- `bpc`: bits per character, total nats / (ln 2 · characters of the scored text), which compares
  models across tokenizers (a BPE token covers several characters). For a character
  tokenizer it is loss / ln 2 up to the end-of-text tokens (targets without a character).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.data.lm_blocks import SequentialWindows, TokenArray, WindowSampler, collate_windows
from aiayn.errors import ConfigError
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.serialization import save_pretrained
from aiayn.tasks.lm.config import LMConfig, higher_is_better
from aiayn.tokenizers.lm import LMTokenizer
from aiayn.train.loss import LossOutput

log = logging.getLogger(__name__)


def lm_loss(logits: Tensor, target: Tensor) -> LossOutput:
    """Summed cross-entropy of every next token, in fp32 whatever the logits' dtype.

    Shape: logits (B, T, V), target (B, T) long -> sums over the B·T targets (scalars).
    Every target counts: the windows are contiguous text, with no padding.
    """
    V = logits.shape[-1]
    loss = F.cross_entropy(logits.float().reshape(-1, V), target.reshape(-1), reduction="sum")
    return LossOutput(loss, loss.detach(), target.numel())


class LMTask:
    """The `TrainingTask` of a decoder-only language model on a token stream.

    Args:
        model: the language model (its `config.max_len` bounds the context).
        train_tokens: the training stream (N,), e.g. a memory-mapped token file.
        valid_tokens: the validation stream.
        tokenizer: the tokenizer of both streams (for characters per token, and the export).
        config: the task's options.
        seed: seeds the training windows' phase and order (with the epoch).
    """

    def __init__(
        self,
        model: DecoderOnly,
        train_tokens: TokenArray,
        valid_tokens: TokenArray,
        tokenizer: LMTokenizer,
        config: LMConfig | None = None,
        seed: int = 1,
    ) -> None:
        self.model = model
        self.config = config = config or LMConfig()
        self.train_tokens, self.valid_tokens = train_tokens, valid_tokens
        self.tokenizer, self.seed = tokenizer, seed
        self.context = config.context or model.config.max_len
        if self.context > model.config.max_len:
            raise ConfigError(
                f"lm option 'context' = {self.context}: longer than the model's context "
                f"max_len = {model.config.max_len}; shorten it or raise the model's max_len"
            )
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ConfigError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                f"{model.config.vocab_size}; build the model from the tokenizer's size"
            )
        self._windows = SequentialWindows(valid_tokens, self.context, config.batch_size)
        self._chars: int | None = None  # characters of the scored validation text

    # --- TrainingTask -------------------------------------------------------------------------

    def train_sampler(self, rank: int, world_size: int) -> WindowSampler:
        return WindowSampler(
            len(self.train_tokens), self.context, self.config.batch_size,
            seed=self.seed, rank=rank, world_size=world_size,
        )  # fmt: skip

    def collate(self, indices: list[int], device: torch.device) -> tuple[Tensor, Tensor]:
        """Input and target windows starting at `indices`. Shape: -> (B, T), (B, T) long."""
        return collate_windows(self.train_tokens, indices, self.context, device)

    def set_progress(self, step: int, minutes: float) -> None:
        """Nothing in the LM's loss changes as training goes."""

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> LossOutput:
        x, y = batch  # (B, T) each
        return lm_loss(model(x), y)

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Loss, perplexity and bits per character over the validation stream (or its first
        `valid_batches` batches), every target once."""
        device = next(model.parameters()).device
        nats, targets = 0.0, 0
        limit = self.config.valid_batches
        for i, (x, y) in enumerate(self._windows):
            if limit is not None and i >= limit:
                break
            out = lm_loss(model(x.to(device)), y.to(device))
            nats += float(out.nll)
            targets += out.n_tokens
        if self._chars is None:
            self._chars = self.scored_characters(targets)
        loss = nats / max(targets, 1)
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 50.0)),
            "bpc": nats / (math.log(2) * max(self._chars, 1)),
        }

    def higher_is_better(self, metric: str) -> bool:
        """None of the LM's metrics: loss, ppl and bpc all go down (`METRICS`)."""
        return higher_is_better(metric)

    def export(self, model: nn.Module, directory: Path) -> None:
        save_pretrained(model, directory)
        self.tokenizer.save(directory)

    # --- helpers ------------------------------------------------------------------------------

    def scored_characters(self, n_targets: int) -> int:
        """Characters of the text that the first `n_targets` validation targets spell.

        The windows score the stream in order from its second token, so the targets are the
        contiguous ids 1 .. n_targets; their text is decoded once (special tokens such as
        end-of-text have none). A BPE span cut inside a character counts that piece as one.
        """
        ids = self.valid_tokens[1 : 1 + n_targets]
        return len(self.tokenizer.decode(ids.tolist()))


__all__ = ["LMTask", "lm_loss"]
