"""Download Multi30k task 1 (raw, true-cased image captions in English, German and French).

    download_multi30k("data/multi30k")  # → train.en.gz, train.de.gz, …, test_2016_flickr.fr.gz

The files are fetched from the public `multi30k/dataset` repository (or a mirror, `base_url`),
checked against the SHA-256 of the published files, and kept gzipped (`gzip.open(path, "rt")`
reads them). Line i of each language is a translation of line i of the others: 29,000 train,
1,014 val and 1,000 test_2016_flickr sentences.

Multi30k: Elliott, Frank, Sima'an, Specia, "Multi30K: Multilingual English-German Image
Descriptions", 5th Workshop on Vision and Language, 2016 (French: Elliott et al., WMT 2017).
The dataset's README restricts its use to non-commercial research and education.

Guarantees: a file in `out_dir` with a published name is either absent or complete and verified.
A download goes to a temporary file in `out_dir`, is verified, then renamed into place; a failed,
truncated or corrupt download leaves nothing behind and raises `DataError`. Files already present
and verified are not downloaded again.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

from aiayn import __version__
from aiayn.errors import ConfigError, DataError
from aiayn.io import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw"
"""Where the published files live; each is fetched from `<base_url>/<split>.<lang>.gz`."""

SPLITS = ("train", "val", "test_2016_flickr")
LANGUAGES = ("en", "de", "fr")
DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for a connection or for the next bytes of a response (not the whole file)."""

_CHUNK = 1 << 16


class PublishedFile(NamedTuple):
    """Size in bytes and SHA-256 (hex) of one file as published."""

    size: int
    sha256: str


# Computed from the files in the public multi30k/dataset repository, data/task1/raw.
PUBLISHED: dict[str, PublishedFile] = {
    "train.en.gz": PublishedFile(
        568929, "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"
    ),
    "train.de.gz": PublishedFile(
        637044, "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"
    ),
    "train.fr.gz": PublishedFile(
        604242, "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c"
    ),
    "val.en.gz": PublishedFile(
        21650, "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"
    ),
    "val.de.gz": PublishedFile(
        24681, "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"
    ),
    "val.fr.gz": PublishedFile(
        23001, "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9"
    ),
    "test_2016_flickr.en.gz": PublishedFile(
        21077, "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"
    ),
    "test_2016_flickr.de.gz": PublishedFile(
        22890, "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"
    ),
    "test_2016_flickr.fr.gz": PublishedFile(
        22310, "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90"
    ),
}


def file_name(split: str, language: str) -> str:
    """The published name of one file: ("val", "de") → "val.de.gz"."""
    return f"{split}.{language}.gz"


def download_multi30k(
    out_dir: str | os.PathLike[str],
    base_url: str = DEFAULT_BASE_URL,
    languages: Sequence[str] = LANGUAGES,
    splits: Sequence[str] = SPLITS,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Path]:
    """Download and verify Multi30k task-1 files into `out_dir`; skip those already there.

    Args:
        out_dir: directory for the `.gz` files (created if missing).
        base_url: where `<split>.<lang>.gz` are fetched from (http, https or file URL), for a
            mirror or a local copy.
        languages: any of "en", "de", "fr".
        splits: any of "train", "val", "test_2016_flickr".
        progress: show a progress bar per file on stderr.
        timeout: seconds to wait for a connection or for the next bytes of a response.

    Returns:
        The paths of the requested files, split-major: train.en.gz, train.de.gz, …

    Raises:
        ConfigError: an unknown language or split, or an unsupported URL scheme.
        DataError: a file could not be downloaded or does not match the published file.
    """
    names = _requested_names(languages, splits)
    base_url = _check_base_url(base_url)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create output directory {out}: {e.strerror or e}") from e

    paths = []
    for name in names:
        path = out / name
        if _is_verified(path, PUBLISHED[name]):
            logger.info("%s is present and verified; skipping", path)
        else:
            _download(f"{base_url}/{name}", path, PUBLISHED[name], progress, timeout)
            logger.info("downloaded %s", path)
        paths.append(path)
    return paths


def _requested_names(languages: Sequence[str], splits: Sequence[str]) -> list[str]:
    """Published file names for the request, split-major; ConfigError naming any unknown value."""
    # A bare string would otherwise be taken letter by letter ("en" → "e", "n").
    languages = [languages] if isinstance(languages, str) else list(languages)
    splits = [splits] if isinstance(splits, str) else list(splits)
    for kind, values, known in (("language", languages, LANGUAGES), ("split", splits, SPLITS)):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ConfigError(
                f"unknown Multi30k {kind} {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(known)}"
            )
    return [file_name(s, lang) for s in dict.fromkeys(splits) for lang in dict.fromkeys(languages)]


def _check_base_url(base_url: str) -> str:
    """Return `base_url` without a trailing slash; ConfigError unless http, https or file."""
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme not in ("http", "https", "file"):
        raise ConfigError(f"base URL {base_url!r} must start with https://, http:// or file://")
    return base_url.rstrip("/")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_verified(path: Path, expected: PublishedFile) -> bool:
    """True if `path` is the published file; a wrong file is logged and will be replaced."""
    if not path.is_file():
        return False
    # The size check first: it is free and catches most damaged files without hashing.
    if path.stat().st_size == expected.size and _sha256_of(path) == expected.sha256:
        return True
    logger.warning("%s exists but is not the published file; downloading it again", path)
    return False


def _download(
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
    mirror = "pass --base-url (base_url=) to use a mirror"
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"aiayn/{__version__}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _copy_stream(response, out, expected, url.rsplit("/", 1)[-1], progress)
    except urllib.error.HTTPError as e:
        raise DataError(
            f"cannot download {url}: HTTP {e.code} {e.reason}; check the URL or {mirror}"
        ) from e
    except urllib.error.URLError as e:
        raise DataError(
            f"cannot download {url}: {e.reason}; check your network (and proxy), or {mirror}"
        ) from e
    except TimeoutError as e:
        raise DataError(
            f"cannot download {url}: no data for {timeout:g} s; retry later, or {mirror}"
        ) from e
    except (OSError, http.client.HTTPException) as e:  # reset mid-transfer, disk full, …
        raise DataError(f"cannot download {url}: {e!r}; retry, or {mirror}") from e


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
