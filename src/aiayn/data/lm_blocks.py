"""Language-model batches: contiguous windows of a token stream, input and target shifted by one.

A decoder-only LM trains on windows of `context + 1` consecutive ids cut from one long stream
(a token file, `token_file.py`): the input is the first `context` ids and the target the last
`context`, so position t learns to predict id t + 1 (nanoGPT's `get_batch`). A window is named
by its start offset in the stream, which is what the Trainer's sampler yields as an example
"index"; `collate_windows` turns offsets into tensors.

Training windows (`WindowSampler`): each epoch lays a grid of non-overlapping windows over the
stream at a random phase (0 .. context - 1), shuffles them and deals them into batches. So an
epoch trains on (nearly) every token once as a target, the cut points move from epoch to epoch,
ranks get disjoint windows, and everything follows from (seed, epoch): a resumed run sees the
same windows as an uninterrupted one. Unlike nanoGPT's draws with replacement, no window repeats
within an epoch and none is missed.

Validation windows (`SequentialWindows`): non-overlapping windows in stream order, plus a
shorter final window for the tail, so every id but the first is a target exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from aiayn.data.batching import changed_settings
from aiayn.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

TokenArray = np.ndarray  # (N,) integer ids; a read-only np.memmap in practice


def check_enough_tokens(n_tokens: int, context: int, what: str = "the corpus") -> None:
    """DataError unless `n_tokens` hold one window of `context` + 1 tokens."""
    if context < 1:
        raise ConfigError(f"context must be >= 1, got {context}")
    if n_tokens < context + 1:
        raise DataError(
            f"{what} has {n_tokens:,} tokens, but a context of {context} needs at least "
            f"{context + 1:,} (one window of context + 1); use more text or a shorter context"
        )


def split_tokens(tokens: TokenArray, valid_fraction: float = 0.1) -> tuple[TokenArray, TokenArray]:
    """Split a stream into (train, valid): valid is the last `valid_fraction` of it.

    nanoGPT's Tiny Shakespeare split (the first 90% train, the last 10% validation). Both are
    views of `tokens`, nothing is copied. Taking the tail (not random windows) keeps the two
    apart: no validation text sits inside a training window.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    cut = int(len(tokens) * (1.0 - valid_fraction))  # nanoGPT's int(n * 0.9) for 0.1
    return tokens[:cut], tokens[cut:]


def collate_windows(
    tokens: TokenArray,
    offsets: Sequence[int],
    context: int,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and target ids of the windows starting at `offsets`.

    Shape: offsets (B,) -> x (B, context) int64, y (B, context) int64, with
    y[b, t] = tokens[offsets[b] + t + 1] = x[b, t + 1]. On CUDA the copy is asynchronous
    from pinned memory.

    Raises:
        ValueError: an offset whose window does not fit in `tokens`.
    """
    n = len(tokens)
    if not offsets or min(offsets) < 0 or max(offsets) + context + 1 > n:
        raise ValueError(
            f"window offsets must be in 0 .. {n - context - 1} for {n} tokens and context "
            f"{context}, got {len(offsets)} offsets in {min(offsets, default=None)} .. "
            f"{max(offsets, default=None)}"
        )
    windows = np.stack([tokens[o : o + context + 1] for o in offsets]).astype(np.int64)
    w = torch.from_numpy(windows)  # (B, context + 1)
    x, y = w[:, :-1].contiguous(), w[:, 1:].contiguous()  # (B, context) each
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda":  # nanoGPT: pinned host memory lets the copy overlap compute
            x, y = x.pin_memory(), y.pin_memory()
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
    return x, y


class WindowSampler:
    """Start offsets of training windows, a batch at a time; resumable; DDP-aware.

    Implements the Trainer's `ResumableSampler`: `__iter__` yields the rest of the current
    epoch's batches (lists of `batch_size` offsets), then moves to the next epoch.

    Epoch e: a generator seeded by (seed, e) draws a phase p in 0 .. max_phase and a
    permutation of the grid windows p, p + context, p + 2·context, …; the shuffled windows are
    dealt into batches, and rank r takes batches r, r + w, r + 2w, … (w = world_size). The grid
    has `n_windows` = max(1, (N - 1) // context - 1) windows, one fewer than fits at phase 0 so
    that every phase fits, and `len(sampler)` = max(1, n_windows // (batch_size · world_size))
    batches per rank — about N / (batch_size · context · world_size). Windows left over
    (fewer than a batch per rank) differ each epoch; if the corpus has fewer windows than one
    batch per rank, windows repeat within the epoch (logged).

    Resuming: `state_dict()` holds (epoch, index), index counting the batches yielded this epoch,
    with the settings that must match; `load_state_dict` then continues with the same windows.

    Args:
        n_tokens: length N of the training stream.
        context: window length T (input and target each have T ids).
        batch_size: windows per batch (per rank, per micro-batch).
        seed: seeds every epoch's phase and order, with the epoch.
        rank, world_size: this process's share of each epoch.

    Raises:
        DataError: fewer than context + 1 tokens.
        ConfigError: a non-positive batch size, a bad rank, or a negative seed.
    """

    def __init__(
        self,
        n_tokens: int,
        context: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_enough_tokens(n_tokens, context, "the training data")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank {rank}, world {world_size}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self.n_tokens, self.context, self.batch_size = n_tokens, context, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.n_windows = max(1, (n_tokens - 1) // context - 1)
        # The last window, p + (n_windows - 1)·context, needs context + 1 tokens from there.
        self.max_phase = min(context - 1, n_tokens - 1 - self.n_windows * context)
        per_step = batch_size * world_size
        self._batches = max(1, self.n_windows // per_step)
        if self.n_windows < per_step:
            logger.warning(
                "%d windows of %d tokens are fewer than one batch of %d per rank (%d ranks); "
                "windows repeat within each epoch",
                self.n_windows, context, batch_size, world_size,
            )  # fmt: skip
        self._epoch, self._index = 0, 0

    @property
    def epoch(self) -> int:
        return self._epoch

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return self._batches

    def epoch_offsets(self, epoch: int) -> np.ndarray:
        """This rank's window starts in `epoch`, batch by batch. Shape: (len(self), batch_size)."""
        # SeedSequence mixes (seed, epoch) as a pair: (0, 1) and (1, 0) are unrelated.
        rng = np.random.default_rng([self.seed, epoch])
        phase = int(rng.integers(self.max_phase + 1))
        needed = self._batches * self.world_size * self.batch_size
        rounds = -(-needed // self.n_windows)  # > 1 only when windows must repeat
        order = np.concatenate([rng.permutation(self.n_windows) for _ in range(rounds)])
        starts = phase + order[:needed] * self.context  # (needed,)
        batches = starts.reshape(self._batches * self.world_size, self.batch_size)
        return batches[self.rank :: self.world_size]  # (len(self), batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        """Yield the rest of the current epoch's batches, then move to the next epoch."""
        if self._index >= len(self):  # a state saved at the very end of an epoch
            self._epoch, self._index = self._epoch + 1, 0
        epoch = self._epoch
        batches = self.epoch_offsets(epoch)
        for i in range(self._index, len(batches)):
            self._index = i + 1  # before yielding: a state_dict() taken now counts this batch
            yield batches[i].tolist()
        self._epoch, self._index = epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of `epoch`; a no-op when it is the current epoch."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch != self._epoch:
            self._epoch, self._index = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        """Position plus the settings that must match on resume."""
        return {
            "epoch": self._epoch,
            "index": self._index,
            "seed": self.seed,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "context": self.context,
            "n_tokens": self.n_tokens,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position; ConfigError if the saved run cut windows differently."""
        keys = ("seed", "world_size", "batch_size", "context", "n_tokens")
        changed = changed_settings(state, self.state_dict(), keys)
        if changed:
            raise ConfigError(
                f"cannot resume the training windows exactly, the saved run differs: "
                f"{', '.join(changed)}; resume with the saved settings and data"
            )
        self._epoch, self._index = int(state["epoch"]), int(state["index"])


class SequentialWindows:
    """Validation batches: non-overlapping windows in order, the tail in a shorter one.

    Windows start at 0, context, 2·context, … while context + 1 tokens remain; they come
    `batch_size` at a time, as (x, y) of shape (B, context). With `include_tail` (default), the
    ids after the last full window form one more batch of shape (1, r), r < context, so every
    id but the first is a target exactly once (`n_targets` = N - 1) and a validation loss is
    the mean over the whole stream. Deterministic; iterate as often as needed.

    Args:
        tokens: the validation stream, (N,).
        context: window length; the same as in training, so positions see as much context.
        batch_size: windows per batch.
        include_tail: also score the ids after the last full window.
        device: where the batches go (None: CPU).

    Raises:
        DataError: fewer than context + 1 tokens.
    """

    def __init__(
        self,
        tokens: TokenArray,
        context: int,
        batch_size: int,
        *,
        include_tail: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        check_enough_tokens(len(tokens), context, "the validation data")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.tokens, self.context, self.batch_size, self.device = (
            tokens,
            context,
            batch_size,
            device,
        )
        self.n_windows = (len(tokens) - 1) // context  # full windows
        tail = len(tokens) - 1 - self.n_windows * context
        self.tail = tail if include_tail else 0  # targets in the shorter last window

    @property
    def n_targets(self) -> int:
        """Target ids over all batches: N - 1 with the tail, else n_windows · context."""
        return self.n_windows * self.context + self.tail

    def __len__(self) -> int:
        return -(-self.n_windows // self.batch_size) + (1 if self.tail else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y): (B, context) int64 each; last, with a tail, (1, r) each."""
        for first in range(0, self.n_windows, self.batch_size):
            last = min(first + self.batch_size, self.n_windows)
            offsets = [k * self.context for k in range(first, last)]
            yield collate_windows(self.tokens, offsets, self.context, self.device)
        if self.tail:
            yield collate_windows(
                self.tokens, [self.n_windows * self.context], self.tail, self.device
            )


__all__ = [
    "SequentialWindows",
    "WindowSampler",
    "check_enough_tokens",
    "collate_windows",
    "split_tokens",
]
