"""Detokenization restores Multi30k exactly: decode(encode(x)) == x for every validation line.

Trains on Multi30k train (29,000 sentence pairs, about a second per vocabulary) and checks every
line of val, as the paper's setting would: one BPE vocabulary shared by English and German.
"""

import gzip
import unicodedata
from pathlib import Path

import pytest

from aiayn.tokenizers import UNK_ID, Tokenizer, train_bpe, train_wordpiece

MULTI30K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "multi30k"

pytestmark = pytest.mark.skipif(
    not (MULTI30K / "train.en.gz").is_file(),
    reason=f"Multi30k not found at {MULTI30K} (the shared data folder beside the repository)",
)


def read_lines(name: str) -> list[str]:
    with gzip.open(MULTI30K / name, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module", params=["bpe", "wordpiece"])
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    train = train_bpe if request.param == "bpe" else train_wordpiece
    return train([MULTI30K / "train.en.gz", MULTI30K / "train.de.gz"], vocab_size=8000)


# French was not in the training data: it checks that unseen text (leading spaces, œ) survives too.
@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_val_round_trips_exactly(tokenizer: Tokenizer, lang: str) -> None:
    lines = read_lines(f"val.{lang}.gz")
    assert len(lines) == 1014
    # NFC normalization leaves NFC text unchanged; a non-NFC line could not round-trip.
    assert all(unicodedata.is_normalized("NFC", line) for line in lines)
    ids = tokenizer.encode_batch(lines, add_bos=True)
    assert not any(UNK_ID in row for row in ids)
    decoded = tokenizer.decode_batch(ids)
    mismatches = [(a, b) for a, b in zip(lines, decoded, strict=True) if a != b]
    assert not mismatches, f"{len(mismatches)} lines differ, first: {mismatches[0]}"
    # The one-at-a-time path gives the same ids and text as the batched one.
    assert [tokenizer.encode(line, add_bos=True) for line in lines] == ids
    assert [tokenizer.decode(row) for row in ids] == decoded


def test_shared_vocabulary_is_full_and_compresses(tokenizer: Tokenizer) -> None:
    assert tokenizer.vocab_size == 8000
    lines = read_lines("val.de.gz")
    n_tokens = sum(map(len, tokenizer.encode_batch(lines, add_eos=False)))
    n_words = sum(len(line.split()) for line in lines)
    assert (
        n_tokens < 1.5 * n_words
    )  # subwords, not characters: 1.2 (en) to 1.35 (de) tokens per word
