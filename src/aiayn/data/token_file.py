"""Token files: a text corpus encoded once into a flat array of ids on disk, memory-mapped.

A language model trains on random windows of one long stream of ids (see `lm_blocks.py`).
Encoding the corpus every run would cost minutes for large corpora, and holding it in memory
would not scale, so it is encoded once into a file beside the run and memory-mapped:

- `<path>`: the ids, back to back, little-endian `uint16` when the vocabulary has at most
  65,536 ids (half the size and page-cache footprint), else `uint32`;
- `<path>.json`: the sidecar: dtype, number of tokens, vocabulary size, the tokenizer's
  fingerprint, the end-of-text id, and each source file's path, size and mtime. The file is
  rebuilt only when one of these changes: a source edited, added or removed, or another
  tokenizer.

Layout of the ids: every source file is one document, framed by the end-of-text token
(`eot d1 eot d2 … eot`), so the model learns both how a document starts (after `eot`, which
is why generation starts from it) and where one ends (predicting `eot`).

Sources are streamed in chunks (`text_files.iter_text_chunks`), so a corpus larger than memory
works, and the ids equal those of encoding each file's whole text at once. Both files are
written atomically: the sidecar is removed first and written last, so an interrupted build
leaves a token file without a sidecar, which the next build redoes.

Example::

    tokens = build_token_file(["a.txt", "b.txt.gz"], tokenizer, "runs/lm/data/train.tokens")
    tokens.shape, tokens.dtype          # (N,), uint16 — a read-only np.memmap
    build_token_file(...)               # again: nothing to do, the same file is mapped
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aiayn.errors import DataError
from aiayn.io import atomic_path, atomic_write_text
from aiayn.tokenizers.lm import LMTokenizer
from aiayn.tokenizers.text_files import (
    DEFAULT_CHUNK_CHARS,
    Sources,
    iter_text_chunks,
    source_paths,
)

logger = logging.getLogger(__name__)

FORMAT = "aiayn-token-file"
VERSION = 1
SIDECAR_SUFFIX = ".json"
_CHUNKS_PER_BATCH = 8  # chunks encoded together: the BPE library spreads them over all cores


@dataclass(frozen=True)
class SourceStamp:
    """What identifies one source file's content cheaply: its path, size and mtime."""

    path: str  # absolute
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> SourceStamp:
        stat = path.stat()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class TokenFileInfo:
    """The sidecar of a token file: what it holds and what it was made from."""

    dtype: str  # "uint16" or "uint32", little-endian on disk
    n_tokens: int
    vocab_size: int
    tokenizer: str  # the tokenizer's fingerprint
    eot_id: int
    sources: tuple[SourceStamp, ...]

    def same_inputs(self, other: TokenFileInfo) -> bool:
        """True if both were made from the same sources by the same tokenizer."""
        mine, theirs = asdict(self), asdict(other)
        del mine["n_tokens"], theirs["n_tokens"]
        return mine == theirs

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenFileInfo:
        """Parse a sidecar; KeyError/TypeError/ValueError when it is not one of this version."""
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} sidecar")
        if data["dtype"] not in ("uint16", "uint32") or not isinstance(data["n_tokens"], int):
            raise ValueError(f"bad dtype {data['dtype']!r} or token count {data['n_tokens']!r}")
        sources = tuple(SourceStamp(**s) for s in data["sources"])
        fields = {k: data[k] for k in ("dtype", "n_tokens", "vocab_size", "tokenizer", "eot_id")}
        return cls(**fields, sources=sources)


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest dtype for ids below `vocab_size`: uint16 up to 65,536 ids, else uint32."""
    if not 0 < vocab_size <= 2**32:
        raise ValueError(f"vocab_size must be in 1 .. 2**32, got {vocab_size}")
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar of a token file: `<path>.json`."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def build_token_file(
    sources: Sources,
    tokenizer: LMTokenizer,
    path: str | os.PathLike[str],
    *,
    progress: bool = True,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
) -> np.memmap:
    """Encode text files into the token file `path` unless it is current; map it read-only.

    Args:
        sources: one path or a list of paths of UTF-8 text files, plain or gzip. Each file is
            one document, framed by `tokenizer.eot_id`.
        tokenizer: any `LMTokenizer`.
        path: the token file; its sidecar is `<path>.json`. Parent directories are created.
        progress: a progress bar on stderr (in bytes of the sources) while encoding.
        chunk_chars: characters encoded at a time (memory use is a few times this).

    Returns:
        The ids: a read-only `np.memmap` of shape (n_tokens,).

    Raises:
        DataError: a source is missing, a directory, empty, not UTF-8 (line and byte named),
            or the token file cannot be written.
    """
    path = Path(path)
    paths = source_paths(sources)
    # Stamped before reading: a file edited while it is encoded looks changed next time.
    wanted = TokenFileInfo(
        dtype=token_dtype(tokenizer.vocab_size).name,
        n_tokens=-1,
        vocab_size=tokenizer.vocab_size,
        tokenizer=tokenizer.fingerprint,
        eot_id=tokenizer.eot_id,
        sources=tuple(SourceStamp.of(p) for p in paths),
    )
    stale = _why_stale(path, wanted)
    if stale is None:
        logger.info("%s is up to date; not encoding again", path)
        return load_token_file(path)
    logger.info("encoding %s: %s", path, stale)
    sidecar = sidecar_path(path)
    start = time.perf_counter()
    try:
        sidecar.unlink(missing_ok=True)  # until the new sidecar is written, the file is stale
        n_tokens = _encode(paths, tokenizer, path, progress, chunk_chars)
        atomic_write_text(sidecar, replace(wanted, n_tokens=n_tokens).to_json())
    except OSError as e:
        raise DataError(
            f"cannot write token file {path}: {e.strerror or e}; check that the directory "
            "is writable and has space"
        ) from e
    seconds = time.perf_counter() - start
    logger.info(
        "encoded %d file(s) into %s tokens in %.1f s (%.0f tokens/s): %s",
        len(paths), f"{n_tokens:,}", seconds, n_tokens / max(seconds, 1e-9), path,
    )  # fmt: skip
    return load_token_file(path)


def read_token_file_info(path: str | os.PathLike[str]) -> TokenFileInfo:
    """The sidecar of the token file `path`.

    Raises:
        DataError: no sidecar, or not one this version of aiayn wrote.
    """
    sidecar = sidecar_path(path)
    try:
        return TokenFileInfo.from_dict(json.loads(sidecar.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DataError(
            f"{sidecar} not found: {path} is not a complete token file; build it with "
            "aiayn.data.token_file.build_token_file"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{sidecar} is not a token-file sidecar ({e}); delete it and {path}, and rebuild"
        ) from e


def load_token_file(path: str | os.PathLike[str]) -> np.memmap:
    """The ids of a token file, memory-mapped read-only. Shape: (n_tokens,).

    Raises:
        DataError: no sidecar, or a file whose size does not match it (truncated or replaced).
    """
    path = Path(path)
    info = read_token_file_info(path)
    dtype = np.dtype(info.dtype).newbyteorder("<")
    expected = info.n_tokens * dtype.itemsize
    actual = path.stat().st_size if path.is_file() else None
    if actual != expected:
        found = "no file" if actual is None else f"{actual:,} bytes"
        raise DataError(
            f"{path}: {found}, but its sidecar says {info.n_tokens:,} {info.dtype} tokens "
            f"({expected:,} bytes); delete both and rebuild it"
        )
    return np.memmap(path, dtype=dtype, mode="r", shape=(info.n_tokens,))


def _why_stale(path: Path, wanted: TokenFileInfo) -> str | None:
    """Why the token file must be (re)built, or None if it is current."""
    if not sidecar_path(path).is_file():
        return "no token file yet" if not path.exists() else "no sidecar"
    try:
        have = read_token_file_info(path)
    except DataError:
        return "unreadable sidecar"
    if not have.same_inputs(wanted):
        if have.sources != wanted.sources:
            return "the source files changed"
        return "the tokenizer changed"
    itemsize = np.dtype(have.dtype).itemsize
    if not path.is_file() or path.stat().st_size != have.n_tokens * itemsize:
        return "the token file does not match its sidecar"
    return None


def _encode(
    paths: list[Path], tokenizer: LMTokenizer, dest: Path, progress: bool, chunk_chars: int
) -> int:
    """Write `eot d1 eot d2 … eot` to `dest` atomically, streaming; return the token count."""
    from tqdm import tqdm

    dtype = token_dtype(tokenizer.vocab_size)
    eot = np.array([tokenizer.eot_id], dtype=dtype)
    total_bytes = sum(p.stat().st_size for p in paths)
    n_tokens = 0
    bar = tqdm(
        total=total_bytes, desc=f"encoding {dest.name}", unit="B", unit_scale=True,
        unit_divisor=1024, file=sys.stderr, disable=not progress,
    )  # fmt: skip
    with bar, atomic_path(dest) as tmp, open(tmp, "wb") as out:

        def write(texts: list[str]) -> None:
            nonlocal n_tokens
            for ids in tokenizer.encode_batch(texts):
                out.write(np.asarray(ids, dtype=dtype).tobytes())
                n_tokens += len(ids)
            texts.clear()

        for path in paths:
            out.write(eot.tobytes())
            n_tokens += 1
            batch: list[str] = []
            for chunk in iter_text_chunks(path, chunk_chars, bar.update):
                batch.append(chunk)
                if len(batch) == _CHUNKS_PER_BATCH:
                    write(batch)
            write(batch)
        out.write(eot.tobytes())
        n_tokens += 1
        out.flush()
        os.fsync(out.fileno())  # durable before the rename makes it visible
    return n_tokens


__all__ = [
    "SourceStamp",
    "TokenFileInfo",
    "build_token_file",
    "load_token_file",
    "read_token_file_info",
    "sidecar_path",
    "token_dtype",
]
