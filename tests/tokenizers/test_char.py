"""CharTokenizer: a deterministic vocabulary, exact round trips, <unk> for unseen characters."""

import gzip
import json

import numpy as np
import pytest
import torch

from aiayn.errors import DataError
from aiayn.tokenizers import (
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    CharTokenizer,
    load_lm_tokenizer,
    train_lm_tokenizer,
)

from conftest import SHARED

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n\tSpeak,  speak.\n"


def test_vocabulary_is_the_sorted_characters_after_the_fixed_special_tokens():
    tok = CharTokenizer.train([TEXT])
    assert tok.characters == "".join(sorted(set(TEXT)))
    assert tok.vocab_size == len(SPECIAL_TOKENS) + len(set(TEXT))
    assert tok.encode("\t") == [len(SPECIAL_TOKENS)]  # "\t" has the lowest code point here
    assert (tok.pad_id, tok.eot_id, tok.bos_id, tok.unk_id) == (PAD_ID, EOS_ID, EOS_ID, UNK_ID)
    # The order of the texts does not matter; the vocabulary is a function of the character set.
    assert CharTokenizer.train([TEXT[40:], TEXT[:40]]).characters == tok.characters


ROUND_TRIPS = [TEXT, "", "\n\n\n", "  leading and trailing  ", "Speak\r\nspeak", "a</s>b<pad>"]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_round_trip_is_exact(text):
    tok = CharTokenizer.train(ROUND_TRIPS)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


def test_unicode_round_trips_one_id_per_code_point():
    text = "Grüße, 日本語 😀 e\u0301 \u2028 line"  # combining accent and LINE SEPARATOR kept as is
    tok = CharTokenizer.train([text])
    assert len(tok.encode(text)) == len(text)
    assert tok.decode(tok.encode(text)) == text


def test_special_token_strings_in_text_are_plain_characters():
    tok = CharTokenizer.train(["</s><unk>"])
    ids = tok.encode("</s>")
    assert len(ids) == 4 and not set(ids) & {PAD_ID, 1, EOS_ID, UNK_ID}


def test_unseen_characters_become_unk_and_are_skipped_when_decoding():
    tok = CharTokenizer.train(["abc"])
    ids = tok.encode("abzé😀c")
    assert ids[2:5] == [UNK_ID] * 3
    assert tok.decode(ids) == "abc"
    assert tok.decode(ids, skip_special=False) == "ab<unk><unk><unk>c"


def test_decode_accepts_tensors_arrays_and_ignores_out_of_range_ids():
    tok = CharTokenizer.train(["abc"])
    ids = tok.encode("cab")
    assert tok.decode(torch.tensor(ids)) == "cab"
    assert tok.decode(np.array(ids)) == "cab"
    assert tok.decode([EOS_ID, *ids, tok.vocab_size, -1, PAD_ID]) == "cab"


def test_decoding_a_prefix_then_the_rest_gives_the_whole():
    tok = CharTokenizer.train([TEXT])
    ids = tok.encode(TEXT)
    for cut in range(len(ids) + 1):
        assert tok.decode(ids[:cut]) + tok.decode(ids[cut:]) == TEXT


def test_encode_array_matches_encode_and_is_int64():
    tok = CharTokenizer.train([TEXT])
    array = tok.encode_array(TEXT + "§")
    assert array.dtype == np.int64 and array.tolist() == tok.encode(TEXT + "§")
    assert tok.encode_batch(["ab", TEXT]) == [tok.encode("ab"), tok.encode(TEXT)]


def test_save_and_load_round_trip_with_a_type_marker(tmp_path):
    tok = CharTokenizer.train([TEXT, "ü\u2028"])
    path = tok.save(tmp_path / "model")
    assert path == tmp_path / "model" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "char" and data["special_tokens"] == list(SPECIAL_TOKENS)
    loaded = load_lm_tokenizer(tmp_path / "model")
    assert isinstance(loaded, CharTokenizer)
    assert loaded.characters == tok.characters
    assert loaded.fingerprint == tok.fingerprint
    assert loaded.encode(TEXT) == tok.encode(TEXT)
    assert load_lm_tokenizer(path).fingerprint == tok.fingerprint  # the file itself works too


def test_fingerprint_changes_with_the_vocabulary():
    assert CharTokenizer("ab").fingerprint == CharTokenizer("ab").fingerprint
    assert CharTokenizer("ab").fingerprint != CharTokenizer("abc").fingerprint


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"version": 99}, "version 99 is not supported"),
        ({"characters": "ba"}, "sorted"),
        ({"characters": ""}, "at least one character"),
        ({"special_tokens": ["<pad>"]}, "special tokens"),
    ],
)
def test_a_bad_file_is_a_data_error_naming_it(tmp_path, edit, message):
    path = CharTokenizer("ab").save(tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, **edit}), encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_lm_tokenizer(tmp_path)
    assert str(path) in str(info.value)


def test_the_constructor_refuses_unsorted_or_repeated_characters():
    with pytest.raises(ValueError, match="sorted"):
        CharTokenizer("aa")


def test_trains_from_files_plain_and_gzip(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n", encoding="utf-8")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("wörld\n")
    tok = train_lm_tokenizer("char", [tmp_path / "a.txt", tmp_path / "b.txt.gz"])
    assert tok.characters == "".join(sorted(set("hello\nwörld\n")))


@pytest.mark.skipif(
    not (SHARED / "data" / "tinyshakespeare" / "input.txt.gz").is_file(),
    reason=f"Tiny Shakespeare is not in {SHARED} (the shared/ folder next to the repository)",
)
def test_tiny_shakespeare_has_65_characters():
    tok = train_lm_tokenizer("char", SHARED / "data" / "tinyshakespeare" / "input.txt.gz")
    assert len(tok.characters) == 65  # nanoGPT's shakespeare_char vocabulary
    assert tok.vocab_size == 69
