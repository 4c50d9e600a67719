"""`aiayn data`: fetch public data sets."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="download public data sets (Multi30k, Tiny Shakespeare)")
    datasets = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    m = datasets.add_parser(
        "multi30k",
        help="Multi30k task 1: train, val, test_2016_flickr in en, de, fr",
        description="Download the raw Multi30k task-1 files (gzip) with integrity checks. "
        "Files already present and intact are skipped; a failed download leaves nothing behind.",
    )
    m.add_argument("--out", required=True, help="directory to write the .gz files into")
    m.add_argument(
        "--base-url", default=None,
        help="mirror to download from instead of the dataset's public repository",
    )  # fmt: skip
    m.add_argument(
        "--languages", default="en,de,fr", help="comma-separated languages (default: en,de,fr)"
    )
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(run=run_multi30k)
    s = datasets.add_parser(
        "shakespeare",
        help="Tiny Shakespeare: one plain-text file (input.txt) for language models",
        description="Download Tiny Shakespeare's input.txt with an integrity check. A file "
        "already present and intact is skipped; a failed download leaves nothing behind.",
    )
    s.add_argument("--out", required=True, help="directory to write input.txt into")
    s.add_argument(
        "--base-url", default=None,
        help="mirror to download from instead of the karpathy/char-rnn repository",
    )  # fmt: skip
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(run=run_shakespeare)


def run_multi30k(args: argparse.Namespace) -> int:
    from aiayn.data.multi30k import DEFAULT_BASE_URL, download_multi30k

    paths = download_multi30k(
        args.out,
        base_url=args.base_url or DEFAULT_BASE_URL,
        languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
        progress=not args.no_progress,
    )
    for path in paths:
        print(path)
    return 0


def run_shakespeare(args: argparse.Namespace) -> int:
    from aiayn.data.shakespeare import DEFAULT_BASE_URL, download_shakespeare

    path = download_shakespeare(
        args.out, base_url=args.base_url or DEFAULT_BASE_URL, progress=not args.no_progress
    )
    print(path)
    return 0
