"""`Ensemble`: several translation models decoded as one, by averaging their predictions.

At each step the ensemble's next-token distribution is the mean of its members'
probabilities, p(y | x, y<t) = 1/M Σ_m p_m(y | x, y<t) (fairseq's ensemble, and the usual
way an NMT ensemble is decoded). Members share the vocabulary and may differ in everything
else (depth, width, the checkpoint they come from).

An `Ensemble` has the interface the decoders use (`encode`, `decode`, `new_cache`,
`config.pad_id`), so greedy and beam search run it unchanged. The trick that makes this work
is the memory: the members' encoder outputs are concatenated along the feature axis into one
tensor, so a search can repeat and select its rows exactly as for a single model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.nn.kv_cache import DecoderCache


class EnsembleCache:
    """One `DecoderCache` per member, reordered together."""

    def __init__(self, caches: list[DecoderCache]) -> None:
        self.members = caches

    @property
    def length(self) -> int:
        return self.members[0].length

    def reorder(self, index: Tensor, cross: bool = True) -> None:
        for cache in self.members:
            cache.reorder(index, cross=cross)


class Ensemble(nn.Module):
    """Decode `models` (sharing one vocabulary) as one model; see the module docstring.

    `config` is the first member's, for what decoding reads from it (pad_id, and max_len:
    the smallest of the members' limits, so no member sees a longer sequence than it takes).
    """

    def __init__(self, models: Sequence[EncoderDecoder]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        first = models[0].config
        for i, model in enumerate(models[1:], 2):
            cfg = model.config
            mine = (cfg.src_vocab_size, cfg.tgt_vocab_size, cfg.pad_id)
            theirs = (first.src_vocab_size, first.tgt_vocab_size, first.pad_id)
            if mine != theirs:
                raise ValueError(
                    f"model {i} has (src_vocab_size, tgt_vocab_size, pad_id) = {mine} but "
                    f"model 1 has {theirs}; ensemble members must share one vocabulary"
                )
        self.members = nn.ModuleList(models)
        self.config = first.replace(max_len=min(m.config.max_len for m in models))
        self._widths = [m.config.d_model for m in models]

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Shape: src (B, S) long -> memory (B, S, ΣD) (members' memories side by side),
        memory_mask (B, 1, 1, S) bool (the same for every member: it only marks padding)."""
        memories, mask = [], None
        for model in self.members:
            memory, mask = model.encode(src)  # (B, S, D_m), (B, 1, 1, S)
            memories.append(memory)
        return torch.cat(memories, dim=-1), mask

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor | None,
        memory_mask: Tensor,
        cache: EnsembleCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Log of the members' mean next-token probability, (B, T or 1, V) fp32.

        These are log-probabilities, so a log_softmax over them (as beam search applies)
        leaves them unchanged and argmax (greedy) picks the ensemble's most probable token.
        """
        pieces = [None] * len(self.members) if memory is None else memory.split(self._widths, -1)
        caches = [None] * len(self.members) if cache is None else cache.members
        lprobs = [
            F.log_softmax(model.decode(tgt, piece, memory_mask, c, last_only).float(), dim=-1)
            for model, piece, c in zip(self.members, pieces, caches, strict=True)
        ]  # M × (B, T, V)
        return torch.logsumexp(torch.stack(lprobs), dim=0) - math.log(len(lprobs))

    def new_cache(self, capacity: int = 64) -> EnsembleCache:
        return EnsembleCache([m.new_cache(capacity) for m in self.members])
