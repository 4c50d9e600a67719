"""Reading plain-text corpora exactly, in chunks: what language-model tokenization reads.

A language model sees text as it is — newlines, runs of spaces, tabs, any Unicode — so nothing
here strips, normalizes or splits lines the way the translation readers do. Files are UTF-8,
plain or gzip (told by the magic number, not the name); a UTF-8 byte-order mark at the start of
a file is not text and is dropped.

Text is streamed in chunks of about `chunk_chars` characters, so a corpus larger than memory
works. Every chunk boundary sits just before a "\\n" (or, failing that, a " ") that is followed
by a non-space character. GPT-2's byte-level pre-tokenizer always splits there (the whitespace
run before a word ends just before its last character, which starts the next piece), and BPE
never merges across pieces, so encoding the chunks one by one gives exactly the ids of encoding
the whole text at once; a character-level encoding does not care where the cuts are. Only text
with no such place for `MAX_CHUNK_FACTOR` × `chunk_chars` characters is cut anywhere (logged).

Bad input raises a one-line `DataError` that names the file, and for invalid UTF-8 the line and
byte, with the fix.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from aiayn.errors import DataError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Sources = PathLike | Sequence[PathLike]

DEFAULT_CHUNK_CHARS = 1 << 20
MAX_CHUNK_FACTOR = 64  # a chunk with no safe boundary is cut anyway at this × chunk_chars
_GZIP_MAGIC = b"\x1f\x8b"


def source_paths(sources: Sources) -> list[Path]:
    """The files of `sources` (one path or a list of paths), checked before anything is read.

    Raises:
        DataError: no files given, or one is missing, not a regular file, or empty.
    """
    paths = [Path(sources)] if isinstance(sources, (str, os.PathLike)) else list(map(Path, sources))
    if not paths:
        raise DataError("no text files given; pass at least one path")
    for path in paths:
        if not path.exists():
            raise DataError(
                f"{path}: no such file; check the path and that the data was downloaded"
            )
        if not path.is_file():
            raise DataError(f"{path}: not a regular file; give the path of a text file (or .gz)")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; give a file with text in it")
    return paths


def iter_text_chunks(
    path: PathLike,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    on_bytes: Callable[[int], object] | None = None,
) -> Iterator[str]:
    """Yield the text of one file in chunks whose concatenation is the whole text (no BOM).

    Chunks hold about `chunk_chars` characters or more, cut only where byte-level BPE splits
    anyway (see the module docstring). `on_bytes(n)` is called as the file's bytes on disk are
    consumed (compressed bytes for gzip), for a progress bar.

    Raises:
        DataError: the file cannot be read, is a truncated gzip, holds invalid UTF-8 (the message
            says the line and byte, and how to convert the file), or holds no text at all.
    """
    path = Path(path)
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be >= 1, got {chunk_chars}")
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below, also when the generator is dropped)
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e}); check its permissions") from e
    with raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        reported = 0  # bytes of `raw` already passed to on_bytes

        def report() -> None:
            nonlocal reported
            if on_bytes is not None:
                position = raw.tell()
                on_bytes(position - reported)
                reported = position

        pending: list[str] = []  # decoded lines not yet yielded
        size = 0  # characters in `pending`
        next_try = chunk_chars  # size at which to look for a boundary again
        total = 0  # characters yielded
        for text in _decoded_lines(path, stream):
            pending.append(text)
            size += len(text)
            if size < next_try:
                continue
            buffer = "".join(pending)
            cut = _boundary(buffer)
            if cut < 0 and size >= MAX_CHUNK_FACTOR * chunk_chars:
                cut = len(buffer)
                logger.warning(
                    "%s: no whitespace boundary in %d characters; cutting the text there, "
                    "where byte-level BPE may encode it slightly differently than the whole",
                    path, size,
                )  # fmt: skip
            if cut < 0:
                pending, next_try = [buffer], 2 * size  # look again when twice as long
                continue
            total += cut
            report()
            yield buffer[:cut]
            rest = buffer[cut:]
            pending, size, next_try = [rest], len(rest), len(rest) + chunk_chars
        if size:
            total += size
            yield "".join(pending)
        report()
    if total == 0:
        raise DataError(f"{path}: holds no text (empty once decompressed); give a file with text")


def _decoded_lines(path: Path, stream) -> Iterator[str]:
    """Lines of a binary stream decoded as UTF-8, newlines kept; the first without a BOM.

    Lines are split on b"\\n" only, so "\\r", U+2028 and friends stay inside the text as they
    are, and decoding line by line gives the line number of bad UTF-8 (a multi-byte sequence
    never contains the byte 0x0A, so no character spans two lines).
    """
    lineno, offset = 0, 0  # line number and byte offset (of the text) of the current line
    try:
        for lineno, line in enumerate(stream, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: invalid UTF-8 ({e.reason} at byte {e.start} of the line, "
                    f"byte {offset + e.start} of the text); convert the file to UTF-8, e.g. "
                    f"iconv -f LATIN1 -t UTF-8 {path} > fixed.txt"
                ) from None
            if lineno == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not text
            offset += len(line)
            yield text
    except (OSError, EOFError, zlib.error) as e:  # truncated or corrupt gzip, read errors
        raise DataError(
            f"{path}:{lineno + 1}: cannot read ({e}); check the file is complete "
            f"(for .gz: gzip -t {path})"
        ) from e


def _boundary(text: str) -> int:
    """The last index i > 0 where text[i] is "\\n" (else " ") and text[i + 1] is not
    whitespace: cutting before i leaves byte-level pre-tokenization unchanged. -1 if none."""
    for separator in ("\n", " "):
        i = text.rfind(separator)
        while i > 0:
            # str.isspace() accepts every character the tokenizer's \s does, and a few more
            # (U+001C..U+001F), so this errs on the safe side.
            if i + 1 < len(text) and not text[i + 1].isspace():
                return i
            i = text.rfind(separator, 0, i)
    return -1


__all__ = ["DEFAULT_CHUNK_CHARS", "Sources", "iter_text_chunks", "source_paths"]
