"""Reading corpora in chunks: exact text, cuts that BPE cannot see, errors that name the line."""

import gzip
import random

import pytest

from aiayn.errors import DataError
from aiayn.tokenizers import ByteBPETokenizer
from aiayn.tokenizers.text_files import _boundary, iter_text_chunks, source_paths

PIECES = [" ", "  ", "\n", "\n\n", "\r\n", "\t", "a", "word", "1", "23", ".", "'s", "'ll", "é",
          "日", "\u2028", "\x1c", "\u00a0", " the", "?!"]  # fmt: skip


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(n))


@pytest.fixture(scope="module")
def bpe():
    rng = random.Random(0)
    return ByteBPETokenizer.train([_random_text(rng, 3000)], vocab_size=320, min_frequency=1)


def test_cutting_at_a_boundary_never_changes_the_bpe_encoding(bpe):
    """The module's claim, checked at every boundary of many random texts."""
    rng = random.Random(1)
    checked = 0
    for _ in range(300):
        text = _random_text(rng, 40)
        whole = bpe.encode(text)
        for i in range(1, len(text) - 1):
            if text[i] in "\n " and not text[i + 1].isspace():
                assert bpe.encode(text[:i]) + bpe.encode(text[i:]) == whole, (text, i)
                checked += 1
    assert checked > 1000


def test_boundary_prefers_newlines_and_needs_a_non_space_after():
    assert _boundary("ab\ncd ef") == 2
    assert _boundary("ab cd") == 2  # no newline: a space will do
    assert _boundary("ab\n\n") == -1 and _boundary("ab \t") == -1 and _boundary("abc") == -1
    assert _boundary("\nab") == -1  # a cut at 0 would give an empty chunk


@pytest.mark.parametrize("compress", [False, True])
def test_chunks_join_to_the_exact_text(tmp_path, bpe, compress):
    rng = random.Random(2)
    text = _random_text(rng, 5000)
    path = tmp_path / ("c.txt.gz" if compress else "c.txt")
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    seen = []
    chunks = list(iter_text_chunks(path, chunk_chars=300, on_bytes=seen.append))
    assert len(chunks) > 10
    assert "".join(chunks) == text
    assert sum(seen) == path.stat().st_size  # the progress callback covers the file
    assert [i for c in chunks for i in bpe.encode(c)] == bpe.encode(text)


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello\n")
    assert "".join(iter_text_chunks(path)) == "hello\n"


def test_text_without_any_boundary_is_cut_anyway(tmp_path, caplog):
    path = tmp_path / "one_word.txt"
    path.write_text("x" * 5000, encoding="utf-8")
    chunks = list(iter_text_chunks(path, chunk_chars=10))
    assert chunks == ["x" * 5000]  # past 64 × chunk_chars with no boundary: cut, and say so
    assert "no whitespace boundary in 5000 characters" in caplog.text


def test_invalid_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"line one\nline two\nline \xff three\n")
    with pytest.raises(DataError) as info:
        list(iter_text_chunks(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3: invalid UTF-8")
    assert "byte 5 of the line, byte 23 of the text" in message and "iconv" in message
    assert "\n" not in message


def test_a_truncated_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(gzip.compress(b"some text\n" * 1000)[:-30])
    with pytest.raises(DataError, match=r"cannot read .*gzip -t"):
        list(iter_text_chunks(path))


def test_files_are_checked_before_reading(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "ok.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        source_paths([tmp_path / "ok.txt", tmp_path / "empty.txt"])
    with pytest.raises(DataError, match="no such file"):
        source_paths(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="not a regular file"):
        source_paths([tmp_path])
    with pytest.raises(DataError, match="no text files given"):
        source_paths([])
    assert source_paths(str(tmp_path / "ok.txt")) == [tmp_path / "ok.txt"]


def test_a_gzip_of_nothing_holds_no_text(tmp_path):
    path = tmp_path / "nothing.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="holds no text"):
        list(iter_text_chunks(path))
