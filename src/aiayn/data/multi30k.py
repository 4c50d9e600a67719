"""Download Multi30k task 1 (raw, true-cased image captions in English, German and French).

    download_multi30k("data/multi30k")  # → train.en.gz, train.de.gz, …, test_2016_flickr.fr.gz

The files are fetched from the public `multi30k/dataset` repository (or a mirror, `base_url`),
checked against the SHA-256 of the published files, and kept gzipped (`gzip.open(path, "rt")`
reads them). Line i of each language is a translation of line i of the others: 29,000 train,
1,014 val and 1,000 test_2016_flickr sentences.

Multi30k: Elliott, Frank, Sima'an, Specia, "Multi30K: Multilingual English-German Image
Descriptions", 5th Workshop on Vision and Language, 2016 (French: Elliott et al., WMT 2017).
The dataset's README restricts its use to non-commercial research and education.

Guarantees (see `download.py`): a file in `out_dir` with a published name is either absent or
complete and verified; a failed, truncated or corrupt download leaves nothing behind and raises
`DataError`; files already present and verified are not downloaded again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from aiayn.data.download import DEFAULT_TIMEOUT, PublishedFile, fetch_published
from aiayn.errors import ConfigError

DEFAULT_BASE_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw"
"""Where the published files live; each is fetched from `<base_url>/<split>.<lang>.gz`."""

SPLITS = ("train", "val", "test_2016_flickr")
LANGUAGES = ("en", "de", "fr")

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
    files = {name: PUBLISHED[name] for name in names}
    return fetch_published(base_url, out_dir, files, progress, timeout)


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


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "LANGUAGES",
    "PUBLISHED",
    "SPLITS",
    "PublishedFile",
    "download_multi30k",
    "file_name",
]
