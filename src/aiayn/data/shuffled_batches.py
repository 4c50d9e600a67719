"""`ShuffledBatchSampler`: fixed-size batches of examples drawn afresh each epoch; resumable.

For data whose examples all have one size (images), so batches need no planning by length:
epoch e visits a permutation of the examples seeded by (seed, e), cut into batches of
`batch_size` (the last, smaller one dropped: a batch of a few images would give a noisy step).
Unlike `TokenBatchSampler`, whose batches are fixed and only their order is shuffled, a batch
here mixes different examples every epoch, which matters for small image sets.

Distributed: rank r of w takes batches r, r + w, …; the count per rank is the same on every
rank. State: (epoch, index of the next batch), as the Trainer expects of a sampler.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from aiayn.data.batching import changed_settings
from aiayn.errors import ConfigError


class ShuffledBatchSampler:
    """Yields lists of example indices, `batch_size` at a time, epoch after epoch."""

    def __init__(
        self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if n // batch_size < world_size:
            raise ConfigError(
                f"{n} examples make {n // batch_size} full batches of {batch_size} for "
                f"{world_size} rank(s); lower the batch size"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._epoch, self._index = 0, 0

    @property
    def epoch(self) -> int:
        return self._epoch

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return (self.n // self.batch_size) // self.world_size

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches this rank sees in `epoch`, in order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        batches = order[: len(self) * self.world_size * self.batch_size]
        batches = batches.reshape(-1, self.batch_size)[self.rank :: self.world_size]
        return batches.tolist()

    def __iter__(self) -> Iterator[list[int]]:
        """The rest of the current epoch's batches, then on to the next epoch."""
        if self._index >= len(self):
            self._epoch, self._index = self._epoch + 1, 0
        batches = self.epoch_batches(self._epoch)
        for i in range(self._index, len(batches)):
            self._index = i + 1  # before yielding: a state taken after a batch counts it
            yield batches[i]
        self._epoch, self._index = self._epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "index": self._index, "seed": self.seed, "n": self.n,
                "batch_size": self.batch_size, "world_size": self.world_size}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        changed = changed_settings(state, self.state_dict(), ("seed", "n", "batch_size",
                                                              "world_size"))  # fmt: skip
        if changed:
            raise ConfigError(
                f"cannot resume batching exactly, the saved run differs: {', '.join(changed)}; "
                "resume with the same data, batch size, seed and world size"
            )
        self._epoch, self._index = int(state["epoch"]), int(state["index"])


__all__ = ["ShuffledBatchSampler"]
