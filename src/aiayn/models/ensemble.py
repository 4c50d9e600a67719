"""`Ensemble`: several translation models decoded as one, by averaging their predictions.

At each step the ensemble's next-token distribution is the mean of its members'
probabilities, p(y | x, y<t) = 1/M Σ_m p_m(y | x, y<t) (fairseq's ensemble, and the usual
way an NMT ensemble is decoded). Members share the vocabulary and may differ in everything
else (depth, width, the checkpoint they come from).

An `Ensemble` implements the decoding protocol (`start`, `step`: `aiayn.decode.protocol`), its
state the members' states side by side, so greedy and beam search run it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.decode.protocol import DecodingState
from aiayn.models.encoder_decoder import EncoderDecoder


class EnsembleState:
    """One decoding state per member, reordered together."""

    def __init__(self, states: list[DecodingState]) -> None:
        self.members = states

    def reorder(self, index: Tensor, same_inputs: bool = False) -> None:
        for state in self.members:
            state.reorder(index, same_inputs)


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

    # --- the decoding protocol (aiayn.decode.protocol) ----------------------------------------

    def start(self, inputs: Tensor, capacity: int = 64) -> EnsembleState:
        """Every member encodes the source. Shape: inputs (B, S) long."""
        return EnsembleState([model.start(inputs, capacity) for model in self.members])

    def step(self, state: EnsembleState, tokens: Tensor) -> Tensor:
        """Log of the members' mean next-token probability. Shape: tokens (B, T) -> (B, V) fp32.

        These are log-probabilities, so a log_softmax over them (as beam search applies)
        leaves them unchanged and argmax (greedy) picks the ensemble's most probable token.
        """
        lprobs = [
            F.log_softmax(model.step(member, tokens).float(), dim=-1)
            for model, member in zip(self.members, state.members, strict=True)
        ]  # M × (B, V)
        return torch.logsumexp(torch.stack(lprobs), dim=0) - math.log(len(lprobs))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced log mean probability. Shape: src (B, S), tgt (B, T) -> (B, T, V)."""
        lprobs = [F.log_softmax(model(src, tgt).float(), dim=-1) for model in self.members]
        return torch.logsumexp(torch.stack(lprobs), dim=0) - math.log(len(lprobs))
