"""`aiayn data`: fetch public data sets."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "data", help="download public data sets (Multi30k, Tiny Shakespeare); build task files"
    )
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
    f = datasets.add_parser(
        "filter-pairs",
        help="a parallel-sentence filtering task (TSV) from clean parallel text",
        description="Write a GLUE-style TSV (sentence1, sentence2, label, kind) with two rows "
        "per line of --src/--tgt: the true pair (label 'translation') and a misaligned one "
        "('not'): the target of another line, a hard one (similar length, most words shared "
        "with the true translation) for --hard-fraction of the lines, else a random one. "
        "For `aiayn train classify --text-column sentence1 --pair-column sentence2`.",
    )
    f.add_argument("--src", required=True, help="source side, one sentence per line (.gz ok)")
    f.add_argument("--tgt", required=True, help="target side, line i translating --src line i")
    f.add_argument("--out", required=True, help="the .tsv file to write")
    f.add_argument(
        "--hard-fraction", type=float, default=0.5,
        help="fraction of negatives that are hard near-misses (default: 0.5)",
    )  # fmt: skip
    f.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    f.add_argument(
        "--limit", type=int, default=None,
        help="use only the first N line pairs (default: all)",
    )  # fmt: skip
    f.set_defaults(run=run_filter_pairs)


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


def run_filter_pairs(args: argparse.Namespace) -> int:
    import json
    from collections import Counter
    from pathlib import Path

    from aiayn.cli.translate import _check_output
    from aiayn.data.pair_negatives import make_pairs, to_tsv
    from aiayn.data.parallel import read_lines
    from aiayn.errors import DataError
    from aiayn.io import atomic_write_text

    if not 0.0 <= args.hard_fraction <= 1.0:
        raise DataError(f"--hard-fraction {args.hard_fraction}: must be in [0, 1]")
    _check_output(args.out, {"--src": args.src, "--tgt": args.tgt}, "--out")
    src, tgt = read_lines(args.src), read_lines(args.tgt)
    if len(src) != len(tgt):
        raise DataError(
            f"{args.src} has {len(src)} lines but {args.tgt} has {len(tgt)}; line i of one "
            "must translate line i of the other"
        )
    if args.limit is not None:
        src, tgt = src[: args.limit], tgt[: args.limit]
    pairs = make_pairs(src, tgt, seed=args.seed, hard_fraction=args.hard_fraction)
    atomic_write_text(Path(args.out), to_tsv(pairs))
    print(json.dumps({"out": args.out, "rows": len(pairs), **Counter(p.kind for p in pairs)}))
    return 0
