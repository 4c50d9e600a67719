"""Download Tiny Shakespeare: 1,115,394 characters of plain text for small language models.

    download_shakespeare("data/shakespeare")  # → data/shakespeare/input.txt

The works of William Shakespeare (public domain) as collected in the public `karpathy/char-rnn`
repository, fetched from there (or a mirror, `base_url`) and checked against the SHA-256 of the
published file. The usual split (nanoGPT's) keeps the first 90% for training and the last 10%
for validation; `aiayn.data.lm_blocks.split_tokens` does that on the encoded tokens.

Guarantees (see `download.py`): `input.txt` in `out_dir` is either absent or complete and
verified; a failed, truncated or corrupt download leaves nothing behind and raises `DataError`;
a file already present and verified is not downloaded again.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiayn.data.download import DEFAULT_TIMEOUT, PublishedFile, fetch_published

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare"
"""Where the published file lives; it is fetched from `<base_url>/input.txt`."""

FILE_NAME = "input.txt"

# The published file: plain UTF-8 (in fact ASCII) text.
PUBLISHED = PublishedFile(
    1115394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
)


def download_shakespeare(
    out_dir: str | os.PathLike[str],
    base_url: str = DEFAULT_BASE_URL,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Download and verify Tiny Shakespeare's `input.txt` into `out_dir`, unless already there.

    Args:
        out_dir: directory for `input.txt` (created if missing).
        base_url: where `input.txt` is fetched from (http, https or file URL), for a mirror
            or a local copy.
        progress: show a progress bar on stderr.
        timeout: seconds to wait for a connection or for the next bytes of a response.

    Returns:
        The path of `input.txt`.

    Raises:
        ConfigError: an unsupported URL scheme.
        DataError: the file could not be downloaded or is not the published file.
    """
    (path,) = fetch_published(base_url, out_dir, {FILE_NAME: PUBLISHED}, progress, timeout)
    return path


__all__ = ["DEFAULT_BASE_URL", "FILE_NAME", "PUBLISHED", "download_shakespeare"]
