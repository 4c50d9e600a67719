"""Downloading published data files: fetch with a timeout, progress, checksum, atomic rename.

What every data set's downloader (`multi30k.py`, `shakespeare.py`) shares. The guarantee it
gives: a file in the output directory with a published name is either absent or complete and
verified. A download goes to a temporary file beside its destination, is checked against the
published size and SHA-256, then renamed into place; a failed, truncated or corrupt download
leaves nothing behind and raises `DataError`. Files already present and verified are not
downloaded again.

Example::

    expected = {"input.txt": PublishedFile(1115394, "86c4…")}
    fetch_published("https://example.org/data", "data/", expected)  # → [Path("data/input.txt")]
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

from aiayn import __version__
from aiayn.errors import ConfigError, DataError
from aiayn.io import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for a connection or for the next bytes of a response (not the whole file)."""

_CHUNK = 1 << 16
_MIRROR_HINT = "pass --base-url (base_url=) to use a mirror"


class PublishedFile(NamedTuple):
    """Size in bytes and SHA-256 (hex) of one file as published."""

    size: int
    sha256: str


def fetch_published(
    base_url: str,
    out_dir: str | os.PathLike[str],
    files: Mapping[str, PublishedFile],
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Path]:
    """Download each `<base_url>/<name>` of `files` into `out_dir`, skipping verified ones.

    Files are fetched in the order given; one that fails raises `DataError`, and those fetched
    before it stay (they are complete and verified).

    Args:
        base_url: http, https or file URL of the folder holding the files (checked first, so
            a bad URL fails before the output directory is created).
        out_dir: directory for the files (created if missing).
        files: published name → expected size and SHA-256.
        progress: show a progress bar per file on stderr.
        timeout: seconds to wait for a connection or for the next bytes of a response.

    Returns:
        The paths of the files, in the order of `files`.

    Raises:
        ConfigError: an unsupported URL scheme.
        DataError: a file could not be downloaded or is not the published file.
    """
    base_url = check_base_url(base_url)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create output directory {out}: {e.strerror or e}") from e
    paths = []
    for name, expected in files.items():
        path = out / name
        if is_verified(path, expected):
            logger.info("%s is present and verified; skipping", path)
        else:
            download_file(f"{base_url}/{name}", path, expected, progress, timeout)
            logger.info("downloaded %s", path)
        paths.append(path)
    return paths


def check_base_url(base_url: str) -> str:
    """Return `base_url` without a trailing slash; ConfigError unless http, https or file."""
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme not in ("http", "https", "file"):
        raise ConfigError(f"base URL {base_url!r} must start with https://, http:// or file://")
    return base_url.rstrip("/")


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_verified(path: Path, expected: PublishedFile) -> bool:
    """True if `path` is the published file; a wrong file is logged and will be replaced."""
    if not path.is_file():
        return False
    # The size check first: it is free and catches most damaged files without hashing.
    if path.stat().st_size == expected.size and sha256_of(path) == expected.sha256:
        return True
    logger.warning("%s exists but is not the published file; downloading it again", path)
    return False


def download_file(
    url: str, dest: Path, expected: PublishedFile, progress: bool, timeout: float
) -> None:
    """Fetch `url` into `dest` atomically, raising DataError unless it matches `expected`."""
    try:
        with atomic_path(dest) as tmp_path, tmp_path.open("wb") as tmp_file:
            digest, size = _fetch(url, tmp_file, expected, progress, timeout)
            _check_content(url, dest.name, expected, digest, size)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())  # durable before the rename makes it visible
    except OSError as e:  # creating the temporary file or renaming it (not the download)
        raise DataError(
            f"cannot write {dest}: {e.strerror or e}; check that the directory is writable"
        ) from e


def _fetch(
    url: str, out: IO[bytes], expected: PublishedFile, progress: bool, timeout: float
) -> tuple[str, int]:
    """Stream `url` into `out`; return (SHA-256 hex, bytes). Network failures → DataError."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"aiayn/{__version__}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _copy_stream(response, out, expected, url.rsplit("/", 1)[-1], progress)
    except urllib.error.HTTPError as e:
        raise DataError(
            f"cannot download {url}: HTTP {e.code} {e.reason}; check the URL or {_MIRROR_HINT}"
        ) from e
    except urllib.error.URLError as e:
        raise DataError(
            f"cannot download {url}: {e.reason}; check your network (and proxy), or {_MIRROR_HINT}"
        ) from e
    except TimeoutError as e:
        raise DataError(
            f"cannot download {url}: no data for {timeout:g} s; retry later, or {_MIRROR_HINT}"
        ) from e
    except (OSError, http.client.HTTPException) as e:  # reset mid-transfer, disk full, …
        raise DataError(f"cannot download {url}: {e!r}; retry, or {_MIRROR_HINT}") from e


def _check_content(url: str, name: str, expected: PublishedFile, digest: str, size: int) -> None:
    """DataError unless the bytes fetched from `url` are the published file `name`."""
    if size > expected.size:
        got = f"more than the {expected.size:,} bytes of the published file"
    elif size != expected.size or digest != expected.sha256:
        got = (
            f"{size:,} bytes with SHA-256 {digest}, expected {expected.size:,} bytes with "
            f"SHA-256 {expected.sha256}"
        )
    else:
        return
    raise DataError(
        f"{url} is not the published {name}: got {got}; nothing was saved. Retry, or pass "
        "--base-url (base_url=) to use a mirror that serves the published files"
    )


def _copy_stream(
    response: IO[bytes], out: IO[bytes], expected: PublishedFile, name: str, progress: bool
) -> tuple[str, int]:
    """Copy `response` to `out`; return (SHA-256 hex, bytes read).

    Stops as soon as more than the expected size has arrived: a wrong URL can serve anything
    (an HTML page, a huge file), and a size above the expected one is already a failure.
    """
    digest = hashlib.sha256()
    size = 0
    with _progress_bar(expected.size, name, progress) as bar:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            size += len(chunk)
            if size > expected.size:
                break
            digest.update(chunk)
            out.write(chunk)
            bar(len(chunk))
    return digest.hexdigest(), size


@contextmanager
def _progress_bar(total: int, name: str, enabled: bool) -> Iterator[Callable[[int], object]]:
    """Yield update(n_bytes): a tqdm bar on stderr when enabled, else a no-op."""
    if not enabled:
        yield lambda n: None
        return
    from tqdm import tqdm  # only needed when a bar is shown

    with tqdm(
        total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr
    ) as bar:
        yield bar.update
