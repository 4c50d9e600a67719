"""Token files: equal to direct encoding, the right dtype, rebuilt only when inputs change."""

import gzip
import json
import os

import numpy as np
import pytest

from aiayn.data import token_file
from aiayn.data.token_file import (
    build_token_file,
    load_token_file,
    read_token_file_info,
    sidecar_path,
    token_dtype,
)
from aiayn.errors import DataError
from aiayn.tokenizers import EOS_ID, ByteBPETokenizer, CharTokenizer

DOC_A = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n  Speak, speak.\n" * 30
)
DOC_B = "Grüße aus Köln.\r\nCafé — 日本語 😀\n\tindented\n" * 20


@pytest.fixture
def corpus(tmp_path):
    """Two documents: a plain file and a gzipped one."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt.gz"
    a.write_text(DOC_A, encoding="utf-8", newline="")
    b.write_bytes(gzip.compress(DOC_B.encode("utf-8")))
    return [a, b]


@pytest.fixture(scope="module")
def char():
    return CharTokenizer.train([DOC_A, DOC_B])


@pytest.fixture(scope="module")
def bpe():
    return ByteBPETokenizer.train([DOC_A, DOC_B], vocab_size=400, min_frequency=2)


@pytest.fixture
def encodings(monkeypatch):
    """Counts how often the corpus is actually encoded."""
    calls = []
    real = token_file._encode

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(token_file, "_encode", counting)
    return calls


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_token_file_equals_direct_encoding_with_framing_eot(tmp_path, corpus, char, bpe, kind):
    tok = {"char": char, "bpe": bpe}[kind]
    # Small chunks: the files are encoded in many pieces, and must still equal the whole.
    tokens = build_token_file(corpus, tok, tmp_path / "run" / "train.tokens", chunk_chars=200,
                              progress=False)  # fmt: skip
    expected = [EOS_ID, *tok.encode(DOC_A), EOS_ID, *tok.encode(DOC_B), EOS_ID]
    assert tokens.tolist() == expected
    assert tok.decode(tokens) == DOC_A + DOC_B
    info = read_token_file_info(tmp_path / "run" / "train.tokens")
    assert (info.n_tokens, info.vocab_size, info.eot_id) == (len(expected), tok.vocab_size, EOS_ID)
    assert info.tokenizer == tok.fingerprint
    assert [s.path for s in info.sources] == [str(p.resolve()) for p in corpus]
    assert [s.size for s in info.sources] == [p.stat().st_size for p in corpus]


def test_the_result_is_a_read_only_memmap(tmp_path, corpus, char):
    tokens = build_token_file(corpus, char, tmp_path / "t.bin", progress=False)
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16
    with pytest.raises(ValueError, match="read-only"):
        tokens[0] = 5
    assert isinstance(load_token_file(tmp_path / "t.bin"), np.memmap)
    assert load_token_file(tmp_path / "t.bin").tolist() == tokens.tolist()


def test_dtype_follows_the_vocabulary_size(tmp_path):
    assert token_dtype(69) == np.uint16 and token_dtype(2**16) == np.uint16
    assert token_dtype(2**16 + 1) == np.uint32
    # A vocabulary of 70,004 ids: the highest ones need 32 bits.
    big = CharTokenizer("".join(chr(0x10000 + k) for k in range(70_000)))
    text = chr(0x10000) + chr(0x10000 + 69_999)
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    tokens = build_token_file(tmp_path / "big.txt", big, tmp_path / "big.tokens", progress=False)
    assert tokens.dtype == np.uint32
    assert tokens.tolist() == [EOS_ID, 4, 70_003, EOS_ID]
    assert os.path.getsize(tmp_path / "big.tokens") == 4 * 4


def test_encodes_once_and_again_only_when_a_source_changes(tmp_path, corpus, char, encodings):
    out = tmp_path / "t.bin"
    first = build_token_file(corpus, char, out, progress=False)
    build_token_file(corpus, char, out, progress=False)
    assert len(encodings) == 1  # nothing changed: the file is mapped, not rebuilt

    stat = corpus[0].stat()
    os.utime(corpus[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size, touched
    build_token_file(corpus, char, out, progress=False)
    assert len(encodings) == 2

    with corpus[0].open("a", encoding="utf-8") as f:
        f.write("More.\n")  # new size
    os.utime(corpus[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # even with the old mtime
    grown = build_token_file(corpus, char, out, progress=False)
    assert len(encodings) == 3 and len(grown) == len(first) + len("More.\n")

    build_token_file(corpus[:1], char, out, progress=False)  # a source removed
    assert len(encodings) == 4


def test_another_tokenizer_rebuilds(tmp_path, corpus, char, bpe, encodings):
    out = tmp_path / "t.bin"
    build_token_file(corpus, char, out, progress=False)
    tokens = build_token_file(corpus, bpe, out, progress=False)
    assert len(encodings) == 2 and tokens.tolist()[1:4] == bpe.encode(DOC_A)[:3]


def test_a_missing_or_broken_sidecar_or_file_rebuilds(tmp_path, corpus, char, encodings):
    out = tmp_path / "t.bin"
    build_token_file(corpus, char, out, progress=False)
    sidecar_path(out).unlink()  # as after an interrupted build
    build_token_file(corpus, char, out, progress=False)
    sidecar_path(out).write_text("{", encoding="utf-8")
    build_token_file(corpus, char, out, progress=False)
    with out.open("ab") as f:
        f.write(b"\0\0")  # the token file no longer matches its sidecar
    with pytest.raises(DataError, match="sidecar says"):
        load_token_file(out)
    tokens = build_token_file(corpus, char, out, progress=False)
    assert len(encodings) == 4 and tokens[-1] == EOS_ID


def test_load_without_a_sidecar_says_how_to_build(tmp_path):
    with pytest.raises(DataError, match=r"t\.bin\.json not found.*build_token_file"):
        load_token_file(tmp_path / "t.bin")
    sidecar_path(tmp_path / "t.bin").write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(DataError, match="not a token-file sidecar"):
        load_token_file(tmp_path / "t.bin")


def test_invalid_utf8_names_file_and_line_and_leaves_nothing(tmp_path, corpus, char):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nanother\nnot \xe9 utf-8\n")
    out = tmp_path / "run" / "t.bin"
    with pytest.raises(DataError) as info:
        build_token_file([corpus[0], bad], char, out, progress=False)
    message = str(info.value)
    assert message.startswith(f"{bad}:3: invalid UTF-8") and "byte 4 of the line" in message
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no partial or temporary file


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.txt", "no such file"), ("", "not a regular file"), ("empty.txt", "is empty")],
)
def test_bad_sources_are_one_line_data_errors(tmp_path, char, name, message):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match=message) as info:
        build_token_file([tmp_path / name], char, tmp_path / "t.bin", progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "t.bin").exists()


def test_an_unwritable_destination_is_a_data_error(tmp_path, corpus, char):
    (tmp_path / "t.bin").mkdir()
    with pytest.raises(DataError, match=r"cannot write token file .*t\.bin"):
        build_token_file(corpus, char, tmp_path / "t.bin", progress=False)


def test_progress_bar_on_stderr_only_when_asked(tmp_path, corpus, char, capsys):
    build_token_file(corpus, char, tmp_path / "a.bin", progress=False)
    assert capsys.readouterr().err == ""
    build_token_file(corpus, char, tmp_path / "b.bin", progress=True)
    captured = capsys.readouterr()
    assert "encoding b.bin" in captured.err and captured.out == ""
