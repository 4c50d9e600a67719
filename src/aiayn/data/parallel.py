"""Reading parallel text: two aligned files (line i ↔ line i) or one TSV file (source<TAB>target).

Files are UTF-8, optionally gzip-compressed (a `.gz` suffix). Reading streams line by line, so
memory holds only the pairs kept; the `read_*` functions return a list, which is fine for corpora
of a few million lines (WMT'14 En-De, 4.5M pairs, is about 1 GB of Python strings).

Bad input raises `DataError` with a one-line message naming the file, the line and the fix. The
`read_*` functions raise before returning anything; the streaming `iter_*` functions may already
have yielded pairs when they find an error (a line-count mismatch shows only at the end), so a
caller that writes output while streaming should write to a temporary file and rename at the end.

Nothing is silently dropped or truncated: empty pairs are skipped and pairs too long for the model
are filtered, and both are counted in a `ReadStats` that the caller logs.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO

from aiayn.errors import DataError

PathLike = str | os.PathLike[str]
TextPair = tuple[str, str]
IdPair = tuple[Sequence[int], Sequence[int]]


@dataclass
class ReadStats:
    """Counts from reading and filtering parallel data; log it, e.g. `log.info("train: %s", s)`.

    `read` = `kept` + `empty` + `too_long` always holds after the functions here.
    """

    read: int = 0  # pairs (lines) read
    kept: int = 0  # pairs returned
    empty: int = 0  # skipped: source or target empty after stripping whitespace
    too_long: int = 0  # skipped: source or target longer than the maximum, in tokens

    def __str__(self) -> str:
        return (
            f"read {self.read:,} pairs, kept {self.kept:,}; skipped {self.empty:,} empty "
            f"and {self.too_long:,} too long"
        )


def _check_file(path: PathLike) -> Path:
    """Fail early, before anything is read, if `path` is not a readable file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path and that the data was downloaded")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; give the path of a text file (or .gz)")
    return path


@contextmanager
def _open_binary(path: Path) -> Iterator[BinaryIO]:
    """Open `path` as bytes, gunzipping when the name ends in `.gz`."""
    try:
        f = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e}); check its permissions") from e
    with f:
        yield f


def _stdin_bytes() -> BinaryIO:
    """Standard input as bytes, so that its bad UTF-8 is reported as a file's is (a text
    stream standing in for stdin, as in tests and notebooks, is re-encoded)."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer if buffer is not None else io.BytesIO(sys.stdin.read().encode("utf-8"))


def _iter_lines(path: Path | None) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line without its newline) from a UTF-8 file
    (None: standard input).

    Lines are split on b"\\n" in bytes and decoded one at a time. Decoding per line gives the line
    number of bad UTF-8, and splitting bytes (not `str.splitlines`) keeps U+2028, U+0085 and
    friends inside a line, where text-mode splitting would break the line ↔ line alignment.
    A multi-byte UTF-8 sequence never contains byte 0x0A, so no character spans two lines.
    """
    lineno = 0
    name = "<stdin>" if path is None else path
    with nullcontext(_stdin_bytes()) if path is None else _open_binary(path) as f:
        try:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"{name}:{lineno}: invalid UTF-8 ({e.reason} at byte {e.start} of the "
                        "line); convert the file to UTF-8, e.g. iconv -f LATIN1 -t UTF-8"
                    ) from None
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not text
                yield lineno, line.rstrip("\r\n")
        except (OSError, EOFError, zlib.error) as e:
            # Truncated or corrupt gzip streams fail here, mid-iteration.
            raise DataError(
                f"{name}:{lineno + 1}: cannot read ({e}); check the file is complete "
                f"(for .gz: gzip -t {path})"
            ) from e


def iter_parallel(
    src_path: PathLike, tgt_path: PathLike, stats: ReadStats | None = None
) -> Iterator[TextPair]:
    """Stream (source, target) pairs from two aligned files, skipping and counting empty pairs.

    Line i of `src_path` pairs with line i of `tgt_path`; each side is stripped of surrounding
    whitespace. `stats`, when given, is updated in place. Raises `DataError` for a missing file,
    invalid UTF-8 or a line-count mismatch (found when the shorter file ends).
    """
    src_path, tgt_path = _check_file(src_path), _check_file(tgt_path)
    stats = stats if stats is not None else ReadStats()
    src_lines, tgt_lines = _iter_lines(src_path), _iter_lines(tgt_path)
    try:
        for src_item, tgt_item in zip_longest(src_lines, tgt_lines):
            if src_item is None or tgt_item is None:
                _raise_count_mismatch(src_path, tgt_path, src_item, tgt_item, src_lines, tgt_lines)
            stats.read += 1
            src, tgt = src_item[1].strip(), tgt_item[1].strip()
            if not src or not tgt:
                stats.empty += 1
                continue
            stats.kept += 1
            yield src, tgt
    finally:  # close both files now, also when the caller stops early, not at garbage collection
        src_lines.close()
        tgt_lines.close()


def _raise_count_mismatch(
    src_path: Path,
    tgt_path: Path,
    src_item: tuple[int, str] | None,
    tgt_item: tuple[int, str] | None,
    src_lines: Iterator[tuple[int, str]],
    tgt_lines: Iterator[tuple[int, str]],
) -> None:
    """Count the rest of the longer file and raise a message that names both files and counts."""
    if src_item is None:
        longer, rest, first_unpaired = tgt_path, tgt_lines, tgt_item
    else:
        longer, rest, first_unpaired = src_path, src_lines, src_item
    assert first_unpaired is not None
    n_short = first_unpaired[0] - 1
    n_long = first_unpaired[0] + sum(1 for _ in rest)
    n_src, n_tgt = (n_short, n_long) if src_item is None else (n_long, n_short)
    raise DataError(
        f"{src_path} has {n_src:,} lines but {tgt_path} has {n_tgt:,} (first unpaired line: "
        f"{longer}:{first_unpaired[0]}); parallel files need one sentence per line, line i "
        "translating line i: find the missing or extra lines"
    )


def read_parallel(src_path: PathLike, tgt_path: PathLike) -> tuple[list[TextPair], ReadStats]:
    """Read all (source, target) pairs from two aligned files; see `iter_parallel`."""
    stats = ReadStats()
    pairs = list(iter_parallel(src_path, tgt_path, stats))
    return pairs, stats


def iter_tsv(path: PathLike, stats: ReadStats | None = None) -> Iterator[TextPair]:
    """Stream (source, target) pairs from a TSV file, one `source<TAB>target` per line.

    Each side is stripped of surrounding whitespace; a pair with an empty side, or a blank line,
    is skipped and counted as empty. A non-blank line without exactly one tab raises `DataError`
    (file:line), since a tab inside a sentence would make the split ambiguous.
    """
    path = _check_file(path)
    stats = stats if stats is not None else ReadStats()
    for lineno, line in _iter_lines(path):
        stats.read += 1
        if not line.strip():
            stats.empty += 1
            continue
        n_tabs = line.count("\t")
        if n_tabs != 1:
            found = "none" if n_tabs == 0 else f"{n_tabs}"
            raise DataError(
                f"{path}:{lineno}: expected exactly one tab (source<TAB>target), found {found}; "
                "separate source and target with one tab and remove tabs inside sentences"
            )
        src, tgt = (side.strip() for side in line.split("\t"))
        if not src or not tgt:
            stats.empty += 1
            continue
        stats.kept += 1
        yield src, tgt


def read_tsv(path: PathLike) -> tuple[list[TextPair], ReadStats]:
    """Read all (source, target) pairs from a TSV file; see `iter_tsv`."""
    stats = ReadStats()
    pairs = list(iter_tsv(path, stats))
    return pairs, stats


def filter_by_length(
    pairs: Iterable[IdPair],
    max_len: int,
    *,
    max_tgt_len: int | None = None,
    stats: ReadStats | None = None,
) -> tuple[list[IdPair], ReadStats]:
    """Drop token-id pairs with a side longer than the model allows, counting them; never truncate.

    `max_len` bounds `len(src_ids)` and `max_tgt_len` (default: `max_len`) bounds `len(tgt_ids)`,
    both counted as given. `collate_pairs` adds one token to the target (<s> in `tgt_in`, </s>
    in `tgt_out`), so for a model with P positions pass `max_tgt_len=P - 1`.

    With `stats` (e.g. from `read_parallel`), it is updated in place and returned: `too_long` grows
    and `kept` shrinks. Without, a fresh one counts only this call.
    """
    max_tgt_len = max_len if max_tgt_len is None else max_tgt_len
    if max_len < 1 or max_tgt_len < 1:
        raise ValueError(f"max_len and max_tgt_len must be >= 1, got {max_len}, {max_tgt_len}")
    fresh = stats is None
    stats = ReadStats() if stats is None else stats
    kept: list[IdPair] = []
    too_long = 0
    for src, tgt in pairs:
        if len(src) > max_len or len(tgt) > max_tgt_len:
            too_long += 1
        else:
            kept.append((src, tgt))
    stats.too_long += too_long
    if fresh:
        stats.read = len(kept) + too_long
        stats.kept = len(kept)
    else:
        stats.kept -= too_long
    return kept, stats


def read_lines(path: PathLike) -> list[str]:
    """Every line of a UTF-8 text file (plain or .gz; "-": standard input), empty ones
    included, without newlines.

    Raises `DataError` naming the file (missing) or the file and line (invalid UTF-8).
    """
    if str(path) == "-":
        return [line for _, line in _iter_lines(None)]
    return [line for _, line in _iter_lines(_check_file(path))]
