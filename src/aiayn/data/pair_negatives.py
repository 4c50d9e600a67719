"""A parallel-sentence filtering task from clean bitext: true pairs and misaligned ones.

Each source sentence appears twice: with its translation (label "translation") and with the
target sentence of another line (label "not"), so the classes are balanced. Half the negatives
are random; the other half are hard: a target of similar length (within `length_slack` words)
that shares the most words with the true translation among `candidates` drawn at random, the
kind of near-miss crawled bitext is full of ("A man in a blue shirt" paired with the German
for "A man in a red shirt"). Hard negatives need the model to read both sentences; random ones
a length or topic cue can give away.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from aiayn.errors import DataError

POSITIVE, NEGATIVE = "translation", "not"
COLUMNS = ("sentence1", "sentence2", "label", "kind")


@dataclass(frozen=True)
class LabelledPair:
    source: str
    target: str
    label: str  # POSITIVE or NEGATIVE
    kind: str  # "true", "random" or "hard"


def _words(text: str) -> set[str]:
    return {w.strip(".,!?;:\"'()").lower() for w in text.split()} - {""}


def make_pairs(
    sources: Sequence[str],
    targets: Sequence[str],
    seed: int = 0,
    hard_fraction: float = 0.5,
    candidates: int = 64,
    length_slack: int = 2,
) -> list[LabelledPair]:
    """Two labelled pairs per line of the parallel text (`sources[i]` translates to
    `targets[i]`): the true one and a negative; lines with an empty side are skipped."""
    if len(sources) != len(targets):
        raise DataError(f"{len(sources)} source lines but {len(targets)} target lines")
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must be in [0, 1], got {hard_fraction}")
    lines = [i for i in range(len(sources)) if sources[i].strip() and targets[i].strip()]
    if len(lines) < 2:
        raise DataError("a filtering task needs at least 2 non-empty line pairs")
    rng = random.Random(seed)
    words = {i: _words(targets[i]) for i in lines}
    lengths = {i: len(targets[i].split()) for i in lines}
    by_length: dict[int, list[int]] = defaultdict(list)
    for i in lines:
        by_length[lengths[i]].append(i)
    out: list[LabelledPair] = []
    for i in lines:
        out.append(LabelledPair(sources[i], targets[i], POSITIVE, "true"))
        if rng.random() < hard_fraction:
            near = [j for n in range(lengths[i] - length_slack, lengths[i] + length_slack + 1)
                    for j in by_length.get(n, ()) if j != i]  # fmt: skip
            pool = rng.sample(near, min(candidates, len(near))) if near else []
            # the most words in common with the true translation, but not the same text
            pool = [j for j in pool if targets[j].strip() != targets[i].strip()]
            if pool:
                j = max(
                    pool, key=lambda j: (len(words[i] & words[j]), -abs(lengths[j] - lengths[i]))
                )
                out.append(LabelledPair(sources[i], targets[j], NEGATIVE, "hard"))
                continue
        j = i
        while j == i or targets[j].strip() == targets[i].strip():
            j = rng.choice(lines)
        out.append(LabelledPair(sources[i], targets[j], NEGATIVE, "random"))
    return out


def to_tsv(pairs: Sequence[LabelledPair]) -> str:
    """GLUE-style TSV text: a header (sentence1, sentence2, label, kind), tab-separated, no
    quoting (a tab or line break inside a sentence becomes a space)."""

    def field(text: str) -> str:  # one row, four fields; every other character kept
        return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")

    rows = ["\t".join(COLUMNS)]
    rows += ["\t".join([field(p.source), field(p.target), p.label, p.kind]) for p in pairs]
    return "\n".join(rows) + "\n"


__all__ = ["COLUMNS", "NEGATIVE", "POSITIVE", "LabelledPair", "make_pairs", "to_tsv"]
