"""Token-based batching (fairseq's `--max-tokens`) and collation into padded tensors.

The paper batches "by approximate sequence length", each batch holding about 25,000 source and
25,000 target tokens (§5.1). Here a batch's cost is its padded size on the larger side:

    cost = n_sentences × max(S, T)        S, T = padded source / target length of the batch

which is fairseq's rule (it sizes an example as max(src_len, tgt_len) and a batch as n × the
largest example): the bigger of the two padded tensors, (B, S) or (B, T), stays ≤ max_tokens.

Lengths are the collated lengths, (S_i, T_i) = (len(src), len(tgt) + 1), because `collate_pairs`
adds <s> to `tgt_in` and </s> to `tgt_out`; `pair_lengths` computes them. An example that alone
costs more than `max_tokens` is an error, not a batch of its own: an oversized batch could run out
of memory hours into training, and `filter_by_length` already drops such pairs, counted.

The batch plan is built once (deterministic, independent of the seed); each epoch shuffles only the
ORDER of batches, with a generator seeded by (seed, epoch), as fairseq does.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler

from aiayn.errors import ConfigError

log = logging.getLogger(__name__)

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3  # defaults; every function takes them as arguments


def pair_lengths(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> np.ndarray:
    """Collated lengths of token-id pairs: (N, 2) int64 rows of (len(src), len(tgt) + 1)."""
    lengths = np.fromiter(
        (n for src, tgt in pairs for n in (len(src), len(tgt) + 1)),
        dtype=np.int64,
        count=2 * len(pairs),
    )
    return lengths.reshape(len(pairs), 2)  # (N, 2)


def _as_lengths(lengths: Sequence[tuple[int, int]] | np.ndarray) -> np.ndarray:
    arr = np.asarray(lengths, dtype=np.int64).reshape(-1, 2) if len(lengths) else np.empty((0, 2))
    if (arr < 0).any():
        raise ValueError("lengths must be non-negative")
    return arr.astype(np.int64, copy=False)  # (N, 2): (S_i, T_i)


@dataclass(frozen=True, eq=False)
class BatchPlan:
    """Batches as slices of one index array, compact for millions of examples.

    Batch b holds examples `indices[offsets[b]:offsets[b + 1]]`; iterating yields lists of ints.
    """

    indices: np.ndarray  # (N,) example ids, grouped batch after batch
    offsets: np.ndarray  # (num_batches + 1,) batch boundaries into `indices`

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, b: int) -> list[int]:
        return self.indices[self.offsets[b] : self.offsets[b + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return (self[b] for b in range(len(self)))

    def fingerprint(self) -> int:
        """CRC32 of the plan, so a resumed run can check it batches the same data the same way."""
        return zlib.crc32(self.offsets.tobytes(), zlib.crc32(self.indices.tobytes()))


def plan_batches(
    lengths: Sequence[tuple[int, int]] | np.ndarray,
    max_tokens: int,
    max_sentences: int | None = None,
    *,
    bucket: bool = True,
) -> BatchPlan:
    """Group examples into batches whose cost n × max(S, T) is ≤ `max_tokens`.

    `lengths`: (N, 2) collated (S_i, T_i), see `pair_lengths`. With `bucket`, examples are sorted
    by max(S_i, T_i), then S_i, then T_i (ties by index), so similar lengths share a batch and
    padding is small; without, they are chunked in the given order. Batches are filled greedily
    and also capped at `max_sentences` when given. Raises `ConfigError` if one example alone
    exceeds `max_tokens`.
    """
    if max_tokens < 1 or (max_sentences is not None and max_sentences < 1):
        raise ValueError(
            f"need max_tokens >= 1 and max_sentences >= 1 or None, got "
            f"{max_tokens}, {max_sentences}"
        )
    lengths = _as_lengths(lengths)
    sizes = lengths.max(axis=1)  # (N,) cost of an example alone
    too_big = np.flatnonzero(sizes > max_tokens)
    if too_big.size:
        i = int(too_big[0])
        raise ConfigError(
            f"example {i} has {sizes[i]} tokens (source {lengths[i, 0]}, target {lengths[i, 1]}) "
            f"but max_tokens is {max_tokens} ({too_big.size:,} examples exceed it); "
            "raise max_tokens or drop long pairs with filter_by_length"
        )
    order = np.lexsort((lengths[:, 1], lengths[:, 0], sizes)) if bucket else np.arange(len(sizes))
    cap = max_sentences if max_sentences is not None else len(sizes)
    offsets = [0]
    n, widest = 0, 0  # sentences and largest example size in the open batch
    for pos, size in enumerate(sizes[order].tolist()):  # a list: fast to loop over in Python
        widest_if_added = max(widest, size)
        if n and (n == cap or (n + 1) * widest_if_added > max_tokens):
            offsets.append(pos)
            n, widest_if_added = 0, size
        n, widest = n + 1, widest_if_added
    if n:
        offsets.append(len(sizes))
    return BatchPlan(order.astype(np.int64), np.asarray(offsets, dtype=np.int64))


def padding_efficiency(
    batches: Iterable[Sequence[int]], lengths: Sequence[tuple[int, int]] | np.ndarray
) -> float:
    """Real tokens / padded tokens over both sides: Σ(S_i + T_i) / Σ_batches n × (S + T)."""
    if isinstance(batches, BatchPlan):
        indices, offsets = batches.indices, batches.offsets
    else:
        batch_list = [list(b) for b in batches if len(b)]
        indices = np.fromiter((i for b in batch_list for i in b), dtype=np.int64)
        offsets = np.cumsum([0] + [len(b) for b in batch_list])
    if len(offsets) < 2:
        return 1.0
    grouped = _as_lengths(lengths)[indices]  # (n_total, 2) in batch order
    widest = np.maximum.reduceat(grouped, offsets[:-1], axis=0)  # (num_batches, 2): (S, T)
    padded = (np.diff(offsets) * widest.sum(axis=1)).sum()
    return float(grouped.sum() / padded) if padded else 1.0


class EpochBatch(list):
    """A batch's example indices (a plain list to any caller) that also carries its epoch.

    With `TokenBatchSampler(epoch_lengths=...)` the examples themselves change from epoch to
    epoch (BPE-dropout segments the text anew), so whoever collates a batch must know which
    epoch's version of the examples its plan was made for; the sampler's own `epoch` may
    already have moved on when a trainer collects a group of batches across an epoch's end.
    """

    def __init__(self, indices: Iterable[int], epoch: int) -> None:
        super().__init__(indices)
        self.epoch = epoch


class TokenBatchSampler(Sampler[list[int]]):
    """Yields lists of example indices, one token-bounded batch at a time; resumable; DDP-aware.

    Use as `DataLoader(pairs, batch_sampler=sampler, collate_fn=collate_pairs)`.

    Epochs: the plan (`plan_batches`) is fixed; epoch e visits its batches in an order shuffled
    by (seed, e). With `epoch_lengths`, examples whose lengths change every epoch (a new
    segmentation each epoch) get a new plan each epoch, made from `epoch_lengths(e)`, so batches
    stay full and padding stays low; the batches are `EpochBatch`es that say their epoch.
    Finishing an epoch's iteration moves to the next epoch, so `for batch in sampler` repeated
    walks epoch 0, 1, 2, ... `set_epoch(e)` jumps to the start of epoch e but keeps the position
    if e is already the current epoch, so a loop that calls `set_epoch` every epoch still
    resumes mid-epoch after `load_state_dict`.

    Distributed: rank r of `world_size` w takes batches r, r + w, r + 2w, ... of the epoch's
    order. The last (num_batches mod w) batches of each epoch's order are dropped so every rank
    runs the same number of steps; with shuffling a different few are dropped each epoch (at most
    w - 1 batches, logged), so no example is lost for good. `len(sampler)` is the per-rank count.

    Resuming: `state_dict()` holds (epoch, index) where index counts the batches yielded this
    epoch. A `DataLoader` with workers pulls batches ahead of training (prefetching), so the
    sampler's index can run ahead of the steps done; a trainer that wants the exact batch should
    save its own count of steps in the epoch as `index`.
    """

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]] | np.ndarray,
        max_tokens: int,
        max_sentences: int | None = None,
        *,
        bucket: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_lengths: Callable[[int], Sequence[tuple[int, int]] | np.ndarray] | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world {world_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.plan = plan_batches(lengths, max_tokens, max_sentences, bucket=bucket)
        self.lengths = _as_lengths(lengths)  # (N, 2)
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        if len(self.plan) < world_size:
            raise ConfigError(
                f"only {len(self.plan)} batches of <= {max_tokens} tokens for {world_size} ranks; "
                "lower max_tokens or use more data"
            )
        self._fingerprint = self.plan.fingerprint()
        self._plan_options = dict(max_tokens=max_tokens, max_sentences=max_sentences, bucket=bucket)
        self._epoch_lengths = epoch_lengths
        self._epoch_plan: tuple[int, BatchPlan] | None = None  # the last epoch's own plan
        self._epoch, self._index = 0, 0
        dropped = len(self.plan) % world_size
        log.info(
            "%d examples in %d batches (%.1f sentences each on average, padding efficiency "
            "%.1f%%); %d per rank per epoch, %d dropped per epoch so ranks stay in step",
            len(self.lengths), len(self.plan), len(self.lengths) / max(len(self.plan), 1),
            100 * padding_efficiency(self.plan, self.lengths), len(self), dropped,
        )  # fmt: skip

    @property
    def epoch(self) -> int:
        return self._epoch

    def __len__(self) -> int:
        """Batches per epoch on this rank (of the current epoch's plan)."""
        return self._rank_batches(self._epoch)

    def plan_for(self, epoch: int) -> BatchPlan:
        """The batch plan of `epoch`: the fixed one, or the epoch's own with `epoch_lengths`."""
        if self._epoch_lengths is None:
            return self.plan
        if self._epoch_plan is None or self._epoch_plan[0] != epoch:
            plan = plan_batches(self._epoch_lengths(epoch), **self._plan_options)
            if len(plan) < self.world_size:
                raise ConfigError(
                    f"epoch {epoch} has only {len(plan)} batches for {self.world_size} ranks; "
                    "lower max_tokens or use more data"
                )
            self._epoch_plan = (epoch, plan)
        return self._epoch_plan[1]

    def _rank_batches(self, epoch: int) -> int:
        return len(self.plan_for(epoch)) // self.world_size

    def _batch_ids(self, epoch: int) -> np.ndarray:
        """Plan batch ids this rank visits in `epoch`, in order: (len(self),)."""
        n = len(self.plan_for(epoch))
        if self.shuffle:
            # SeedSequence mixes (seed, epoch) as a pair: (0, 1) and (1, 0) give unrelated orders,
            # unlike seed + epoch.
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        return order[self.rank : self._rank_batches(epoch) * self.world_size : self.world_size]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches this rank sees in `epoch`, in order (for inspection; iteration is lazy)."""
        plan = self.plan_for(epoch)
        return [EpochBatch(plan[b], epoch) for b in self._batch_ids(epoch).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        """Yield the rest of the current epoch's batches, then move to the next epoch."""
        if self._index >= len(self):  # a saved state at the very end of an epoch
            self._epoch, self._index = self._epoch + 1, 0
        epoch, plan = self._epoch, self.plan_for(self._epoch)
        for i, b in enumerate(self._batch_ids(epoch).tolist()[self._index :], self._index):
            self._index = i + 1  # before yielding: state_dict() taken after a batch counts it
            yield EpochBatch(plan[b], epoch)
        self._epoch, self._index = self._epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of `epoch`; a no-op when it is the current epoch (see class doc)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch != self._epoch:
            self._epoch, self._index = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        """Position plus what must match on resume (seed, world size, the plan's fingerprint)."""
        return {
            "epoch": self._epoch,
            "index": self._index,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "world_size": self.world_size,
            "num_batches": len(self.plan),
            "plan_fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position; raises `ConfigError` if the saved run batched differently."""
        keys = ("seed", "shuffle", "world_size", "num_batches", "plan_fingerprint")
        changed = changed_settings(state, self.state_dict(), keys)
        if changed:
            raise ConfigError(
                f"cannot resume batching exactly, the saved run differs: {', '.join(changed)}; "
                "resume with the same data, max_tokens, max_sentences, seed and world size"
            )
        if state["epoch"] < 0 or not 0 <= state["index"] <= self._rank_batches(state["epoch"]):
            raise ValueError(
                f"bad sampler position: epoch {state['epoch']}, index "
                f"{state['index']} of {len(self)}"
            )
        self._epoch, self._index = int(state["epoch"]), int(state["index"])


def changed_settings(saved: dict[str, Any], mine: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """The settings among `keys` that a saved sampler state has and that differ from this
    sampler's, as "key saved -> now" (for the error that refuses an inexact resume)."""
    return [f"{k} {saved[k]} -> {mine[k]}" for k in keys if k in saved and saved[k] != mine[k]]


class Batch(NamedTuple):
    """A padded batch for teacher forcing; `tgt_out` is `tgt_in` shifted left by one (§3.1)."""

    src: torch.Tensor  # (B, S) source ids, pad-filled
    tgt_in: torch.Tensor  # (B, T) <s> + target ids: the decoder's input
    tgt_out: torch.Tensor  # (B, T) target ids + </s>: what the decoder must predict

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


def collate_pairs(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_id: int = PAD_ID,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> Batch:
    """Pad token-id pairs into a `Batch`: src (B, S), tgt_in (B, T), tgt_out (B, T), int64.

    S = longest source; T = longest target + 1. For other special ids, pass
    `functools.partial(collate_pairs, pad_id=...)` as the DataLoader's `collate_fn`.
    """
    if not pairs:
        raise ValueError("cannot collate an empty batch")
    B = len(pairs)
    S = max(len(src) for src, _ in pairs)
    T = max(len(tgt) for _, tgt in pairs) + 1  # one extra slot for <s> (in) or </s> (out)
    # Fill NumPy arrays row by row (cheaper than a tensor per row), then share memory with torch.
    src_arr = np.full((B, S), pad_id, dtype=np.int64)  # (B, S)
    tgt_in = np.full((B, T), pad_id, dtype=np.int64)  # (B, T)
    tgt_out = np.full((B, T), pad_id, dtype=np.int64)  # (B, T)
    for i, (src, tgt) in enumerate(pairs):
        n = len(tgt)
        src_arr[i, : len(src)] = src
        tgt_in[i, 0] = bos_id
        tgt_in[i, 1 : n + 1] = tgt
        tgt_out[i, :n] = tgt
        tgt_out[i, n] = eos_id
    return Batch(torch.from_numpy(src_arr), torch.from_numpy(tgt_in), torch.from_numpy(tgt_out))
