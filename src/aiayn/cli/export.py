"""`aiayn export`: write a trained model for the CTranslate2 inference engine."""

from __future__ import annotations

import argparse
import json

from aiayn.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a model directory to CTranslate2 (pip install ctranslate2)",
        description="Write MODEL as a CTranslate2 model directory: the same weights, our "
        "sinusoidal position table, the tokenizer's vocabulary and tokenizer files. Greedy "
        "decoding there gives the same tokens as `aiayn translate --beam 1`. The directory "
        "is built beside OUT and renamed into place, so a failed export leaves nothing.",
    )
    p.add_argument("--model", required=True, help="aiayn model directory (as `train` writes)")
    p.add_argument("--out", required=True, help="CTranslate2 model directory to write")
    p.add_argument(
        "--quantization",
        "--quantize",
        default=None,
        help="CTranslate2 weight type, e.g. int8, int8_float32, float16, bfloat16 "
        "(default: keep float32); --quantize int8 is the same flag, named as in "
        "`aiayn translate --quantize int8`",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiayn.export import export_ctranslate2

    try:
        out = export_ctranslate2(
            args.model, args.out, quantization=args.quantization, force=args.force
        )
    except (ImportError, ValueError, FileExistsError) as err:  # user-fixable: say how, no traceback
        raise ConfigError(str(err)) from None
    print(json.dumps({"out": str(out), "quantization": args.quantization or "float32"}))
    return 0
