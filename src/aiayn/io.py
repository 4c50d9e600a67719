"""Files written whole or not at all, and JSON read with errors that name the file and line.

A write that fails for lack of space becomes a `DiskFullError` naming the file and the space
left, with no partial or temporary file behind.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiayn.errors import AiaynError, ConfigError

# What an out-of-space write says where the errno is lost on the way (safetensors' Rust writer
# reports "No space left on device (os error 28)" inside its own exception type).
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28", "StorageFull")


class DiskFullError(AiaynError):
    """A write failed because the disk (or the user's quota) is full."""


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` is an out-of-space (ENOSPC) or over-quota (EDQUOT) failure."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(err) for text in _DISK_FULL_TEXT)


def disk_full_error(
    path: str | os.PathLike,
    what: str = "",
    advice: str = "nothing was left half-written: free some space (or write elsewhere) and run "
    "again",
) -> DiskFullError:
    """The error for a write to `path` (of `what` inside it, if given) that ran out of space:
    the file, the space left, and `advice`."""
    path = Path(path)
    free = free_space(path)
    room = f"{_size(free)} free on its file system" if free is not None else "free space unknown"
    doing = f" while writing {what}" if what else ""
    return DiskFullError(f"{path}: disk full{doing} ({room}); {advice}")


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free to a user on the file system of `path` (its nearest existing ancestor)."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _size(n: float) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{int(n)} bytes" if i == 0 else f"{n:.1f} {units[i]}"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    An interruption at any moment leaves either the old file or the new one, never a partial
    one, and no temporary file behind (except after kill -9, as a hidden `.name.*.tmp`). The
    new file reaches the disk before the rename, and the rename after it, so a power cut
    cannot leave the new name on missing data. A full disk (while writing the temporary file,
    flushing or renaming it) raises `DiskFullError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory: os.replace is atomic only within one file system. Mode 0o666 (not
    # mkstemp's 0o600) so the finished file gets the user's umask like any other file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:  # a full disk may refuse even the (empty) inode
        if is_disk_full(err):
            raise disk_full_error(path) from err
        raise
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            raise disk_full_error(path) from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file or directory to disk, so that a rename after it (or of it) cannot expose
    missing data after a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_object(path: str | os.PathLike, what: str = "JSON file") -> dict[str, Any]:
    """A JSON object from `path`; `ConfigError` naming the file (and line) otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; is this a {what}?") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object ({what})")
    return data
