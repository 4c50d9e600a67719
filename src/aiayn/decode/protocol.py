"""The two methods every decoding strategy drives a model through, whatever its family.

    state = model.start(inputs)           # encode the source / lay out the prompt
    logits = model.step(state, tokens)    # feed new tokens, get the next-token logits
    state.reorder(index)                  # beams: follow the surviving hypotheses

Greedy, beam search and sampling (`aiayn.decode`) know only this protocol — not encoders,
memories or caches — so the encoder-decoder (`start` = encode, first step = `<s>`) and the
decoder-only LM (`start` = the prompt's layout, first step = the prompt itself) decode with
the same loops. Length limits come from the caller: source length + 50 for translation
(§6.1), `max_new_tokens` for a language model.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor


class DecodingState(Protocol):
    """What a model keeps between steps (its KV cache and inputs), row b = sequence b."""

    def reorder(self, index: Tensor, same_inputs: bool = False) -> None:
        """Keep rows `index` (B',) long, in that order (rows may repeat: beams of a sentence).

        `same_inputs`: every new row comes from a row with the same inputs (beams swapping
        within a sentence), so what depends on the inputs alone need not move.
        """


class Decodable(Protocol):
    """A model that greedy, beam search and sampling can drive."""

    config: Any  # its `pad_id` is never generated

    def start(self, inputs: Tensor, capacity: int = 64) -> DecodingState:
        """The state before the first step. Shape: inputs (B, S) long. `capacity`: steps to
        preallocate in the cache (it grows past that if needed)."""

    def step(self, state: DecodingState, tokens: Tensor) -> Tensor:
        """Feed `tokens` (B, T) long (usually T = 1) and return the logits of the next token
        after the last of them: (B, V), a tensor of its own (the loops may write into it)."""


__all__ = ["Decodable", "DecodingState"]
