"""The parallel-sentence filtering task: balanced, true pairs true, negatives never the true
translation, hard negatives nearer than random ones, a TSV the classifier reads back."""

from __future__ import annotations

import gzip
from statistics import mean

import pytest

from aiayn.data.labelled import read_labelled
from aiayn.data.pair_negatives import _words, make_pairs, to_tsv
from aiayn.errors import DataError

from conftest import SHARED

MULTI30K = SHARED / "data" / "multi30k"
pytestmark = pytest.mark.skipif(not MULTI30K.is_dir(), reason="needs ../shared/data/multi30k")


def lines(name: str, n: int = 1000) -> list[str]:
    with gzip.open(MULTI30K / name, "rt", encoding="utf-8") as f:
        return f.read().splitlines()[:n]


def test_pairs_are_balanced_true_and_misaligned():
    en, de = lines("val.en.gz"), lines("val.de.gz")
    pairs = make_pairs(en, de, seed=3)
    assert len(pairs) == 2 * len(en)
    for k in range(0, len(pairs), 2):
        true, negative = pairs[k], pairs[k + 1]
        i = k // 2
        assert (true.source, true.target, true.label) == (en[i], de[i], "translation")
        assert negative.source == en[i] and negative.label == "not"
        assert negative.target != de[i] and negative.target in de
    kinds = [p.kind for p in pairs[1::2]]
    assert abs(kinds.count("hard") / len(kinds) - 0.5) < 0.06


def test_hard_negatives_are_near_misses():
    en, de = lines("val.en.gz"), lines("val.de.gz")
    index = {t: i for i, t in enumerate(de)}
    shared, length_gap = {"hard": [], "random": []}, {"hard": [], "random": []}
    for k, p in enumerate(make_pairs(en, de, seed=1)):
        if p.label == "not":
            true = de[k // 2]
            shared[p.kind].append(len(_words(true) & _words(de[index[p.target]])))
            length_gap[p.kind].append(abs(len(true.split()) - len(p.target.split())))
    assert max(length_gap["hard"]) <= 2
    assert mean(shared["hard"]) > 2 * mean(shared["random"])


def test_the_same_seed_gives_the_same_task_and_the_tsv_reads_back(tmp_path):
    en, de = lines("val.en.gz", 200), lines("val.de.gz", 200)
    assert make_pairs(en, de, seed=5) == make_pairs(en, de, seed=5)
    assert make_pairs(en, de, seed=5) != make_pairs(en, de, seed=6)
    path = tmp_path / "pairs.tsv"
    pairs = make_pairs(en, de, seed=5)
    path.write_text(to_tsv(pairs), encoding="utf-8")
    data = read_labelled(path, "sentence1", "sentence2", "label")
    assert data.texts == [p.source for p in pairs] and data.pairs == [p.target for p in pairs]
    assert data.labels == [p.label for p in pairs]


def test_bad_input():
    with pytest.raises(DataError, match="3 source lines but 2 target"):
        make_pairs(["a", "b", "c"], ["x", "y"])
    with pytest.raises(DataError, match="at least 2"):
        make_pairs(["a", ""], ["x", "y"])
