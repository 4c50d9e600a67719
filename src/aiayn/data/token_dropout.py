"""Token dropout: random input tokens become <unk> in training batches (not in the paper).

A regulariser for small corpora, the "word dropout" of Gal & Ghahramani (2016) that Sennrich &
Zhang (2019) found among the most useful settings for low-resource translation: the encoder
cannot lean on any single source token, and the decoder, reading <unk> in place of some of the
reference's previous tokens, must lean on the source rather than on its own language model.
It changes the encoder's and the decoder's inputs only; the targets the loss scores stay intact.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def drop_tokens(ids: Tensor, p: float, unk_id: int, keep: Iterable[int]) -> Tensor:
    """`ids` with each token not in `keep` (padding, <s>, </s>) replaced by `unk_id` with
    probability `p`. Draws from torch's default generator, so seeds and saved RNG states
    reproduce it.

    Shape: ids (B, T) long -> (B, T) long (a new tensor; `ids` is not changed).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"token dropout must be in [0, 1), got {p}")
    if p == 0.0:
        return ids
    hit = torch.rand(ids.shape, device=ids.device) < p  # (B, T)
    for special in keep:
        hit &= ids != special
    return ids.masked_fill(hit, unk_id)


__all__ = ["drop_tokens"]
