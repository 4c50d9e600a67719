"""Reading parallel text: aligned files, .gz, TSV, one-line errors naming file and line, counts."""

import gzip
from pathlib import Path

import pytest

from aiayn.data.parallel import (
    ReadStats,
    filter_by_length,
    iter_parallel,
    read_parallel,
    read_tsv,
)
from aiayn.errors import DataError


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def data_error(func, *args) -> str:
    """Run `func`, expect DataError, and return its message (always a single line)."""
    with pytest.raises(DataError) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reads_aligned_files_strips_whitespace(tmp_path):
    src = write(tmp_path / "a.en", "Hello world\n  two spaces \r\nthird\n")
    tgt = write(tmp_path / "a.de", "Hallo Welt\nzwei\ndritte")  # no final newline
    pairs, stats = read_parallel(src, tgt)
    assert pairs == [("Hello world", "Hallo Welt"), ("two spaces", "zwei"), ("third", "dritte")]
    assert stats == ReadStats(read=3, kept=3, empty=0, too_long=0)


def test_reads_gzip_and_mixed(tmp_path):
    src = write(tmp_path / "a.en.gz", "ein\nzwei\n")
    tgt = write(tmp_path / "a.de", "one\ntwo\n")
    pairs, _ = read_parallel(src, tgt)
    assert pairs == [("ein", "one"), ("zwei", "two")]


def test_unicode_line_separators_do_not_split_lines(tmp_path):
    # U+2028 and U+0085 are line breaks for str.splitlines; they must not shift the alignment.
    src = write(tmp_path / "a.en", "a\u2028b\nc\u0085d\n")
    tgt = write(tmp_path / "a.de", "x\ny\n")
    pairs, _ = read_parallel(src, tgt)
    assert pairs == [("a\u2028b", "x"), ("c\u0085d", "y")]


def test_byte_order_mark_is_dropped(tmp_path):
    src = write(tmp_path / "a.en", "\ufeffhello\n")
    tgt = write(tmp_path / "a.de", "hallo\n")
    assert read_parallel(src, tgt)[0] == [("hello", "hallo")]


def test_empty_pairs_are_skipped_and_counted(tmp_path):
    src = write(tmp_path / "a.en", "one\n\ntwo\n   \nfive\n")
    tgt = write(tmp_path / "a.de", "eins\nzwei\n\ndrei\nfünf\n")
    pairs, stats = read_parallel(src, tgt)
    assert pairs == [("one", "eins"), ("five", "fünf")]
    assert stats == ReadStats(read=5, kept=2, empty=3, too_long=0)
    assert "skipped 3 empty" in str(stats)


@pytest.mark.parametrize("longer", ["src", "tgt"])
def test_line_count_mismatch_names_both_files_and_counts(tmp_path, longer):
    five, three = "a\nb\nc\nd\ne\n", "a\nb\nc\n"
    src = write(tmp_path / "x.en", five if longer == "src" else three)
    tgt = write(tmp_path / "x.de.gz", three if longer == "src" else five)
    message = data_error(read_parallel, src, tgt)
    n_src, n_tgt = (5, 3) if longer == "src" else (3, 5)
    assert f"{src} has {n_src} lines but {tgt} has {n_tgt}" in message
    assert f"{src if longer == 'src' else tgt}:4" in message  # the first unpaired line


def test_invalid_utf8_names_file_and_line(tmp_path):
    src = write(tmp_path / "a.en", "fine\nalso fine\n")
    tgt = write(tmp_path / "a.de", b"gut\nsch\xf6n\n")  # Latin-1 ö on line 2
    message = data_error(read_parallel, src, tgt)
    assert f"{tgt}:2:" in message
    assert "UTF-8" in message


def test_invalid_utf8_in_gzip_names_line(tmp_path):
    src = write(tmp_path / "a.en.gz", b"ok\nok\n\xff\xfe\n")
    tgt = write(tmp_path / "a.de", "ok\nok\nok\n")
    assert f"{src}:3:" in data_error(read_parallel, src, tgt)


def test_missing_file_is_reported_before_reading(tmp_path):
    src = write(tmp_path / "a.en", "x\n")
    missing = tmp_path / "nope.de"
    message = data_error(read_parallel, src, missing)
    assert str(missing) in message and "no such file" in message
    assert str(tmp_path / "nope.tsv") in data_error(read_tsv, tmp_path / "nope.tsv")


def test_corrupt_gzip_is_a_data_error(tmp_path):
    good = gzip.compress(b"line\n" * 1000)
    src = write(tmp_path / "a.en.gz", b"")
    src.write_bytes(good[: len(good) // 2])  # truncated download
    tgt = write(tmp_path / "a.de", "line\n" * 1000)
    assert str(src) in data_error(read_parallel, src, tgt)


def test_streaming_is_lazy_and_counts_as_it_goes(tmp_path):
    src = write(tmp_path / "a.en", "a\nb\nc\n")
    tgt = write(tmp_path / "a.de", "x\ny\nz\n")
    stats = ReadStats()
    stream = iter_parallel(src, tgt, stats)
    assert next(stream) == ("a", "x")
    assert stats.read == 1
    stream.close()  # stopping early is fine and closes the files


def test_tsv(tmp_path):
    path = write(tmp_path / "a.tsv.gz", "Hello\tHallo\n\n  two \t zwei\nempty\t\n\tleer\n")
    pairs, stats = read_tsv(path)
    assert pairs == [("Hello", "Hallo"), ("two", "zwei")]
    assert stats == ReadStats(read=5, kept=2, empty=3, too_long=0)


@pytest.mark.parametrize(("bad_line", "found"), [("no tab here", "found none"), ("a\tb\tc", "2")])
def test_tsv_line_without_exactly_one_tab(tmp_path, bad_line, found):
    path = write(tmp_path / "a.tsv", f"x\ty\nx\ty\n{bad_line}\nx\ty\n")
    message = data_error(read_tsv, path)
    assert f"{path}:3:" in message
    assert "exactly one tab" in message and found in message


def test_filter_by_length_counts_and_never_truncates():
    pairs = [([1] * 5, [1] * 5), ([1] * 6, [1] * 2), ([1] * 2, [1] * 6), ([1] * 3, [1] * 4)]
    kept, stats = filter_by_length(pairs, max_len=5)
    assert kept == [pairs[0], pairs[3]]  # the same lists, not shortened copies
    assert stats == ReadStats(read=4, kept=2, empty=0, too_long=2)
    kept, _ = filter_by_length(pairs, max_len=6, max_tgt_len=5)
    assert kept == [pairs[0], pairs[1], pairs[3]]


def test_filter_by_length_updates_read_stats(tmp_path):
    src = write(tmp_path / "a.en", "a b c\n\na\n")
    tgt = write(tmp_path / "a.de", "x\ny\nx y z w\n")
    pairs, stats = read_parallel(src, tgt)
    ids = [(s.split(), t.split()) for s, t in pairs]  # stand-in tokenizer: one token per word
    kept, same = filter_by_length(ids, max_len=3, stats=stats)
    assert same is stats
    assert kept == [(["a", "b", "c"], ["x"])]
    assert stats == ReadStats(read=3, kept=1, empty=1, too_long=1)
    assert stats.read == stats.kept + stats.empty + stats.too_long
