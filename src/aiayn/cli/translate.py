"""`aiayn translate` and `aiayn evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aiayn.errors import DataError


def add_translate_parser(sub) -> None:
    p = sub.add_parser(
        "translate",
        help="translate text with a trained model (stdin → stdout)",
        description="Translate one sentence per line. Exactly one output line per input line, "
        "in order; an empty line gives an empty line.",
    )
    _model_flag(p)
    p.add_argument("--input", help="file to translate (default: standard input)")
    p.add_argument("--output", help="file to write (default: standard output); written whole")
    _decoding_flags(p)
    p.set_defaults(run=run_translate)


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="translate a test set and score it (BLEU, chrF)",
        description="Prints one JSON object: sacreBLEU on detokenized true-cased output with "
        "its signature, chrF, BLEU on lowercased 13a-tokenized text (the usual Multi30k "
        "convention), the sentence count and the seconds taken.",
    )
    _model_flag(p)
    p.add_argument(
        "--src", required=True, help="source sentences, one per line (.gz ok; - = stdin)"
    )
    p.add_argument("--ref", required=True, help="reference translations, line by line (- = stdin)")
    p.add_argument(
        "--output", help="also write the translations to this file (never --src or --ref)"
    )
    _decoding_flags(p)
    p.set_defaults(run=run_evaluate)


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (argparse then reports a bad value in one line)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def length_penalty_alpha(text: str) -> float:
    """argparse type: a finite α ≥ 0 (NaN would rank every hypothesis equal, a negative α
    favours the shortest: repetitions and empty lines)."""
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _model_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        nargs="+",
        help="model directory written by `aiayn train`, or one of its checkpoints "
        "(RUN/checkpoints/step_N); several (trained with one tokenizer) decode as an "
        "ensemble: the mean of their next-token probabilities",
    )


def _decoding_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--beam", type=positive_int, default=4, help="beam size; 1 = greedy (default: 4)"
    )
    p.add_argument(
        "--alpha", type=length_penalty_alpha, default=0.6,
        help="GNMT length penalty α; 0 = raw log-probability (default: 0.6, the paper's)",
    )  # fmt: skip
    p.add_argument(
        "--stopping", choices=["exact", "k_finished"], default="exact",
        help="when beam search ends a sentence: exact = once no live beam can beat the "
        "beam-size best finished ones (the paper's; never changes the result); k_finished = "
        "once beam-size hypotheses have finished (CTranslate2's and fairseq's rule: fewer "
        "steps, rarely another output) (default: exact)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="sentences per batch (default: 64)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, … (default: cpu)")
    p.add_argument(
        "--quantize", choices=["int8", "none"], default="none",
        help="int8: decode with dynamic int8 linear layers (CPU only; faster, BLEU a little "
        "lower: docs/decoding_speed.md) (default: none)",
    )  # fmt: skip


def _read_lines(path: str | None) -> list[str]:
    """The lines of `path` (None or "-": standard input), bad UTF-8 named by line."""
    from aiayn.data.parallel import read_lines

    return read_lines("-" if path is None else path)


def _check_output(path: str | None, inputs: dict[str, str | None], flag: str = "--output") -> None:
    """Refuse, before any work, an output file (`flag`) that cannot be written or would
    destroy an input (`inputs`: flag → the path it names)."""
    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise DataError(f"{flag} {path}: is a directory; name a file to write")
    if not out.parent.is_dir():
        raise DataError(f"{flag} {path}: directory {out.parent} does not exist; create it first")
    for name, given in inputs.items():
        if given in (None, "-") or not (out.exists() and Path(given).exists()):
            continue  # a missing input is reported when it is read
        if out.samefile(given):
            raise DataError(
                f"{flag} {path} is the {name} file; writing it would destroy it: name another file"
            )


def _write_output(path: str, lines: list[str]) -> None:
    from aiayn.io import atomic_write_text

    atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def _quantize(args: argparse.Namespace) -> str | None:
    """--quantize checked against --device before any model is loaded (one-line error)."""
    from aiayn.export.quantize import check_quantize

    return check_quantize(args.quantize, args.device)


def run_translate(args: argparse.Namespace) -> int:
    from aiayn.translator import translate

    _quantize(args)
    _check_output(args.output, {"--input": args.input})
    lines = _read_lines(args.input)
    outputs = translate(
        args.model, lines, beam=args.beam, alpha=args.alpha, device=args.device,
        batch_size=args.batch_size, quantize=_quantize(args), stopping=args.stopping,
    )  # fmt: skip
    if args.output:
        _write_output(args.output, outputs)
    else:
        sys.stdout.write("".join(line + "\n" for line in outputs))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from aiayn.evaluate import corpus_scores
    from aiayn.translator import translate

    _quantize(args)
    if args.src == args.ref == "-":
        raise DataError("--src and --ref cannot both be - (standard input); name a file for one")
    _check_output(args.output, {"--src": args.src, "--ref": args.ref})
    src, ref = _read_lines(args.src), _read_lines(args.ref)
    if not src:
        raise DataError(f"{args.src}: empty test set, nothing to evaluate; give source sentences")
    if len(src) != len(ref):
        raise DataError(
            f"{args.src} has {len(src)} lines but {args.ref} has {len(ref)}; "
            "line i of --ref must translate line i of --src"
        )
    start = time.perf_counter()
    hyps = translate(
        args.model, src, beam=args.beam, alpha=args.alpha, device=args.device,
        batch_size=args.batch_size, quantize=_quantize(args), stopping=args.stopping,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if args.output:
        _write_output(args.output, hyps)
    result = {
        **corpus_scores(hyps, ref),
        "sentences": len(src),
        "beam": args.beam,
        "alpha": args.alpha,
        "stopping": args.stopping,
        "quantize": args.quantize,
        "seconds": round(seconds, 2),
        "model": " ".join(args.model),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0
