"""BPE-dropout: p = 0 is the tokenizer's own BPE; p > 0 gives finer, varied, lossless, seeded
segmentations."""

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aiayn.tokenizers import train_bpe, train_wordpiece
from aiayn.tokenizers.bpe_dropout import SubwordSampler

MULTI30K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "multi30k"
TEXTS = [
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Zwei junge Männer spielen Fußball auf einer Wiese.",
    "Ein Mädchen klettert in ein Spielhaus aus Holz.",
    "  leading spaces, tabs\tand a literal </s> survive",
    "aaaa aaaaa",  # overlapping occurrences of one merge
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(iter(TEXTS), vocab_size=400)


def test_without_dropout_it_is_the_tokenizers_own_bpe(tokenizer) -> None:
    sampler = SubwordSampler(tokenizer, TEXTS, p=0.0)
    rng = np.random.default_rng(0)
    for i, text in enumerate(TEXTS):
        assert sampler.sample(i, rng) == tokenizer.encode(text, add_eos=False)
    assert sampler.sample_all(rng) == tokenizer.encode_batch(TEXTS, add_eos=False)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_every_segmentation_decodes_to_the_text(tokenizer, p) -> None:
    sampler = SubwordSampler(tokenizer, TEXTS, p=p)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for i, text in enumerate(TEXTS[:5]):
            assert tokenizer.decode(sampler.sample(i, rng)) == text
    assert tokenizer.decode_batch(sampler.sample_all(rng)) == TEXTS


def test_dropout_makes_segmentations_finer_and_varied(tokenizer) -> None:
    plain = [len(tokenizer.encode(t, add_eos=False)) for t in TEXTS[:5]]
    mean_growth = {}
    for p in (0.1, 0.3, 0.6):
        sampler = SubwordSampler(tokenizer, TEXTS, p=p)
        rng = np.random.default_rng(0)
        draws = [[tuple(sampler.sample(i, rng)) for _ in range(40)] for i in range(5)]
        # never coarser than plain BPE: a skipped merge can only leave more pieces
        assert all(len(d) >= n for row, n in zip(draws, plain, strict=True) for d in row)
        assert all(len(set(row)) > 1 for row in draws)  # each sentence varies
        lengths = [len(d) / n for row, n in zip(draws, plain, strict=True) for d in row]
        mean_growth[p] = sum(lengths) / len(lengths)
    assert 1.0 < mean_growth[0.1] < mean_growth[0.3] < mean_growth[0.6]
    # at p = 0.1 the plain segmentation of a word is still the most common one
    sampler = SubwordSampler(tokenizer, TEXTS, p=0.1)
    rng = np.random.default_rng(0)
    counts = Counter(tuple(sampler.sample(1, rng)) for _ in range(200))
    assert counts.most_common(1)[0][0] == tuple(tokenizer.encode(TEXTS[1], add_eos=False))


def test_seeds_reproduce_the_samples(tokenizer) -> None:
    def draws(seed: int, rng_seed: int) -> list[list[int]]:
        sampler = SubwordSampler(tokenizer, TEXTS, p=0.3, seed=seed)
        return sampler.sample_all(np.random.default_rng(rng_seed))

    assert draws(1, 7) == draws(1, 7)
    assert draws(1, 7) != draws(1, 8)  # the caller's generator picks among the variants
    assert draws(1, 7) != draws(2, 7)  # the seed draws the variants


def test_one_variant_per_word_is_a_fixed_random_segmentation(tokenizer) -> None:
    sampler = SubwordSampler(tokenizer, TEXTS, p=0.5, variants=1)
    rng = np.random.default_rng(0)
    assert len({tuple(sampler.sample(0, rng)) for _ in range(10)}) == 1


def test_bad_arguments_are_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SubwordSampler(tokenizer, TEXTS, p=1.0)
    with pytest.raises(ValueError, match="variants"):
        SubwordSampler(tokenizer, TEXTS, p=0.1, variants=0)
    with pytest.raises(ValueError, match="BPE tokenizer"):
        SubwordSampler(train_wordpiece(iter(TEXTS), vocab_size=600), TEXTS, p=0.1)


@pytest.mark.skipif(
    not (MULTI30K / "val.de.gz").is_file(),
    reason=f"Multi30k not found at {MULTI30K} (the shared data folder beside the repository)",
)
def test_multi30k_val_without_dropout_equals_the_tokenizer_and_round_trips_with_it() -> None:
    files = [MULTI30K / "train.en.gz", MULTI30K / "train.de.gz"]
    tokenizer = train_bpe(files, vocab_size=8000)
    for lang in ("en", "de"):
        with gzip.open(MULTI30K / f"val.{lang}.gz", "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
        rng = np.random.default_rng(0)
        plain = SubwordSampler(tokenizer, lines, p=0.0).sample_all(rng)
        assert plain == tokenizer.encode_batch(lines, add_eos=False)
        samples = SubwordSampler(tokenizer, lines, p=0.1).sample_all(rng)
        assert tokenizer.decode_batch(samples) == lines
        growth = sum(map(len, samples)) / sum(map(len, plain))
        assert 1.1 < growth < 1.5, growth  # ~1.25 at p = 0.1 on this vocabulary
