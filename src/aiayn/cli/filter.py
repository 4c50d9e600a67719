"""`aiayn filter`: keep the sentence pairs of a parallel corpus that a pair classifier calls
translations (parallel-sentence filtering: crawled bitext is full of misaligned pairs)."""

from __future__ import annotations

import argparse
import json
import sys

from aiayn.cli.translate import positive_int


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser(
        "filter",
        help="keep the pairs of a parallel corpus that a pair classifier calls translations",
        description="Score every line pair of --src/--tgt with a classifier trained on "
        "(source, target) pairs (`aiayn train classify` with --pair-column), keep those whose "
        "probability of --keep-label is at least --threshold, and write them to --out-src "
        "and --out-tgt (line i of one translating line i of the other, original order). "
        "Prints a JSON summary (pairs read, kept) on stdout.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="pair classifier directory")
    p.add_argument("--src", required=True, help="source side, one sentence per line (.gz ok)")
    p.add_argument("--tgt", required=True, help="target side, line i with line i of --src")
    p.add_argument("--out-src", required=True, help="where to write the kept source lines")
    p.add_argument("--out-tgt", required=True, help="where to write the kept target lines")
    p.add_argument(
        "--keep-label", default="translation",
        help="the label of a good pair [translation]",
    )  # fmt: skip
    p.add_argument(
        "--threshold", type=probability, default=0.5,
        help="keep a pair when P(keep label) is at least this [0.5]",
    )  # fmt: skip
    p.add_argument(
        "--scores", default=None, metavar="FILE",
        help="also write every pair's probability, one per line, in input order",
    )  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=64, help="pairs per batch [64]")
    p.add_argument("--device", default="cpu", help="cpu, cuda, … [cpu]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aiayn.classifier import classify, load_classifier
    from aiayn.cli.translate import _check_output
    from aiayn.data.parallel import read_lines
    from aiayn.errors import DataError
    from aiayn.io import atomic_write_text

    inputs = {"--src": args.src, "--tgt": args.tgt}
    for flag in ("out_src", "out_tgt", "scores"):
        _check_output(getattr(args, flag), inputs, "--" + flag.replace("_", "-"))
    model, tokenizer, labels = load_classifier(args.model, args.device)
    if args.keep_label not in labels.names:
        raise DataError(
            f"--keep-label {args.keep_label!r} is not one of the model's labels "
            f"({', '.join(map(repr, labels.names))})"
        )
    src, tgt = read_lines(args.src), read_lines(args.tgt)
    if len(src) != len(tgt):
        raise DataError(
            f"{args.src} has {len(src)} lines but {args.tgt} has {len(tgt)}; line i of one "
            "must pair with line i of the other"
        )
    predictions = classify(model, src, tgt, tokenizer=tokenizer, labels=labels,
                           batch_size=args.batch_size)  # fmt: skip
    scores = [p.probs[args.keep_label] for p in predictions]
    kept = [i for i, s in enumerate(scores) if s >= args.threshold]
    atomic_write_text(Path(args.out_src), "".join(src[i] + "\n" for i in kept))
    atomic_write_text(Path(args.out_tgt), "".join(tgt[i] + "\n" for i in kept))
    if args.scores:
        atomic_write_text(Path(args.scores), "".join(f"{s:.6f}\n" for s in scores))
    summary = {"pairs": len(src), "kept": len(kept), "threshold": args.threshold}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0
