"""Bidirectional training data: each pair also read the other way round (not in the paper).

Bidirectional training (BiT; Ding et al., EMNLP 2021, "Improving Neural Machine Translation
by Bidirectional Training") trains the first third of a run on the pairs in both directions,
source→target and target→source, with nothing to say which direction a pair goes, then the
rest on the real direction alone. With one vocabulary shared by both languages (and tied
embeddings), the encoder and decoder each learn both languages, which doubles what a small
corpus teaches them early on; the paper reports gains on 15 tasks of 160k to 38M pairs, at no
cost in parameters or steps.

Token ids follow `aiayn.tasks.translation.data`: a source ends with </s>, a target carries no
specials (collation adds <s> and </s>). Reversing a pair moves the </s> with the roles.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiayn.data.parallel import IdPair


def reversed_pairs(pairs: Sequence[IdPair], eos_id: int, limit: int) -> list[IdPair]:
    """Each (source + </s>, target) pair as (target + </s>, source), the target→source pair.

    A reversed pair whose new source would be longer than `limit` tokens (the model's positions
    or the batch's token budget) is left out: its forward pair is still trained on.
    """
    out = []
    for src, tgt in pairs:
        if not src or src[-1] != eos_id:
            raise ValueError(f"a source must end with </s> (id {eos_id}); got {src[-3:]}")
        if len(tgt) + 1 <= limit:
            out.append(([*tgt, eos_id], list(src[:-1])))
    return out


__all__ = ["reversed_pairs"]
