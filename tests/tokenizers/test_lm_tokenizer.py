"""LM tokenizers: byte-level BPE round trips, the common interface, streaming decode, loading."""

import json
import random

import pytest
import torch
from tokenizers import pre_tokenizers

from aiayn.errors import ConfigError, DataError
from aiayn.tokenizers import (
    EOS_ID,
    PAD_ID,
    UNK_ID,
    ByteBPETokenizer,
    CharTokenizer,
    StreamDecoder,
    decode_stream,
    load_lm_tokenizer,
    train_bpe,
    train_lm_tokenizer,
    train_wordpiece,
)
from aiayn.tokenizers.lm import _BYTE_OF_CHAR

CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\n"
    "    Indented verse,\n\tand a tab; Grüße, café, 日本語.\n"
) * 8

HARD_TEXTS = [
    "",
    "\n",
    "\n\n\n  \n",
    "  two leading spaces, trailing tab\t",
    "Windows\r\nline\r\nends\r\n",
    "not NFC: e\u0301, NFC: é; ligature ﬁ; full-width Ａ",  # must not be normalized
    "emoji 😀👍🏽 and 日本語 and \u2028 and \x00\x1b control",
    "special strings are text: <pad> <s> </s> <unk>",
    "never seen in training: ЖЖЖ ∑∫ 🦜",
]


@pytest.fixture(scope="module")
def bpe():
    return ByteBPETokenizer.train([CORPUS], vocab_size=400, min_frequency=2)


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_bpe_round_trip_is_exact_for_any_text(bpe, text):
    ids = bpe.encode(text)
    assert UNK_ID not in ids and EOS_ID not in ids and PAD_ID not in ids
    assert bpe.decode(ids) == text


def test_bpe_learns_merges_across_newlines(bpe):
    # Trained on chunks of text, not lines: a blank line is one token, and so is "\n" + indent.
    assert len(bpe.encode("\n\n")) == 1
    assert bpe.decode(bpe.encode(CORPUS)) == CORPUS
    assert len(bpe.encode(CORPUS)) < len(CORPUS.encode()) / 2  # it does compress


def test_bpe_special_ids_follow_the_lm_convention(bpe):
    assert (bpe.pad_id, bpe.eot_id, bpe.bos_id, bpe.unk_id) == (PAD_ID, EOS_ID, EOS_ID, UNK_ID)
    assert bpe.vocab_size == bpe.tokenizer.vocab_size
    assert bpe.decode([EOS_ID, *bpe.encode("hear"), EOS_ID]) == "hear"
    assert bpe.decode([EOS_ID], skip_special=False) == "</s>"


def test_the_byte_alphabet_is_the_libraries():
    assert set(_BYTE_OF_CHAR) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(_BYTE_OF_CHAR.values()) == list(range(256))


def test_bpe_decode_equals_the_library_decoder_even_for_broken_utf8(bpe):
    rng = random.Random(0)
    for _ in range(300):
        ids = [rng.randrange(bpe.vocab_size) for _ in range(rng.randrange(12))]
        expected = bpe.tokenizer.backend.decode(ids, skip_special_tokens=True)
        assert bpe.decode(ids) == expected
        assert bpe.decode(torch.tensor(ids, dtype=torch.long)) == expected


def test_bpe_training_is_deterministic_and_save_load_keeps_the_fingerprint(bpe, tmp_path):
    again = ByteBPETokenizer.train([CORPUS], vocab_size=400, min_frequency=2)
    assert again.fingerprint == bpe.fingerprint
    path = bpe.save(tmp_path)
    assert path == tmp_path / "tokenizer.json"
    loaded = load_lm_tokenizer(tmp_path)
    assert isinstance(loaded, ByteBPETokenizer)
    assert loaded.fingerprint == bpe.fingerprint
    assert loaded.encode(HARD_TEXTS[-1]) == bpe.encode(HARD_TEXTS[-1])
    # Special-token strings stay text after loading (the switch is not stored in the file).
    assert EOS_ID not in loaded.encode("</s>")


def test_a_translation_tokenizer_file_loads_as_bpe(tmp_path):
    tok = train_bpe(iter(CORPUS.splitlines()), vocab_size=300)
    tok.save(tmp_path / "tokenizer.json")
    assert isinstance(load_lm_tokenizer(tmp_path), ByteBPETokenizer)


# --------------------------------------------------------------------------- streaming decode
@pytest.fixture(scope="module")
def char():
    return CharTokenizer.train([CORPUS, *HARD_TEXTS])


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_stream_decoding_id_by_id_yields_only_complete_text(bpe, char, kind):
    tok = {"bpe": bpe, "char": char}[kind]
    text = "Grüße 😀 日本語 café\n" + HARD_TEXTS[6]
    ids = tok.encode(text)
    pieces = list(decode_stream(tok, ids))
    assert "".join(pieces) == text
    assert all(pieces) and not any("\ufffd" in p for p in pieces)
    if kind == "bpe":  # multi-byte characters really were split across tokens
        assert any("\ufffd" in tok.decode([i]) for i in ids)


def test_stream_decoder_pushes_in_any_grouping_equal_decode(bpe):
    rng = random.Random(1)
    ids = bpe.encode("".join(HARD_TEXTS))
    for _ in range(50):
        stream, out, at = StreamDecoder(bpe), [], 0
        while at < len(ids):
            step = rng.randrange(1, 5)
            out.append(stream.push(ids[at : at + step]))
            at += step
        out.append(stream.finish())
        assert "".join(out) == bpe.decode(ids)


def test_stream_decoder_accepts_tensors_and_flushes_an_unfinished_character(bpe):
    ids = bpe.encode("😀")
    assert len(ids) > 1  # unseen in training: one token per byte
    stream = StreamDecoder(bpe)
    assert stream.push(torch.tensor(ids[0])) == ""
    assert stream.finish() == "\ufffd"  # the ids ended mid-character
    assert bpe.decode(ids[:1]) == "\ufffd"
    stream.push(ids[0])  # finish() reset the decoder
    assert stream.push(torch.tensor(ids[1:])) == "😀" and stream.finish() == ""


def test_random_ids_stream_to_exactly_decode(bpe, char):
    rng = random.Random(2)
    for tok in (bpe, char):
        for _ in range(100):
            ids = [rng.randrange(-1, tok.vocab_size + 2) for _ in range(rng.randrange(15))]
            assert "".join(decode_stream(tok, ids)) == tok.decode(ids)


# ------------------------------------------------------------------------- training, loading
def test_train_lm_tokenizer_reads_files_exactly(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8", newline="")
    tok = train_lm_tokenizer("bpe", path, vocab_size=350)
    assert isinstance(tok, ByteBPETokenizer) and tok.vocab_size <= 350
    assert tok.decode(tok.encode(CORPUS)) == CORPUS
    assert isinstance(train_lm_tokenizer("char", [path]), CharTokenizer)


def test_train_lm_tokenizer_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown tokenizer kind 'word'"):
        train_lm_tokenizer("word", tmp_path)
    with pytest.raises(DataError, match="no such file"):
        train_lm_tokenizer("bpe", tmp_path / "missing.txt")
    with pytest.raises(DataError, match="not a regular file"):
        train_lm_tokenizer("char", tmp_path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"fine\nstill fine\ncaf\xe9\n")
    for kind in ("char", "bpe"):  # the error crosses the Rust trainer unchanged
        with pytest.raises(DataError, match=r"latin1\.txt:3: invalid UTF-8 .*byte 3 of the line"):
            train_lm_tokenizer(kind, bad)
    with pytest.raises(ConfigError, match="too small"):
        ByteBPETokenizer.train(["abc"], vocab_size=10)


def test_load_lm_tokenizer_errors(tmp_path):
    with pytest.raises(DataError, match=r"no tokenizer at .*tokenizer\.json"):
        load_lm_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="cannot read tokenizer"):
        load_lm_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"type": "word"}), encoding="utf-8")
    with pytest.raises(DataError, match="not a language-model tokenizer"):
        load_lm_tokenizer(tmp_path)


def test_a_wordpiece_tokenizer_is_refused():
    wordpiece = train_wordpiece(iter(CORPUS.splitlines()), vocab_size=600)
    with pytest.raises(ValueError, match="byte-level BPE"):
        ByteBPETokenizer(wordpiece)
