"""The `aiayn` command line: one module per command, each a thin layer over a library call.

Every command prints results on stdout; user mistakes (bad file, bad flag value) end with a
one-line `aiayn COMMAND: error: …` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from aiayn.errors import AiaynError


def build_parser() -> argparse.ArgumentParser:
    from aiayn.cli import average, data, demo, export, model_info, train, translate

    parser = argparse.ArgumentParser(
        prog="aiayn",
        description="The Transformer of 'Attention Is All You Need': train, translate, inspect.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log details (INFO level) to stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.add_parser(sub)
    train.add_parser(sub)
    translate.add_translate_parser(sub)
    translate.add_evaluate_parser(sub)
    average.add_parser(sub)
    export.add_parser(sub)
    data.add_parser(sub)
    model_info.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except AiaynError as err:
        print(f"aiayn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `aiayn model-info | head`: the reader left, not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
