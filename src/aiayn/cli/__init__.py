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


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-command word may be left out: with `default_subcommand`,
    arguments that do not start with one of its sub-commands (or ask for help) go to that one.
    `aiayn train --train-src …` is `aiayn train translation --train-src …`."""

    def __init__(self, *args, default_subcommand: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.default_subcommand = default_subcommand
        self._commands: argparse.Action | None = None

    def add_subparsers(self, **kwargs):
        self._commands = super().add_subparsers(**kwargs)
        return self._commands

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if self.default_subcommand and self._commands is not None:
            first = args[0] if args else None
            if first not in self._commands.choices and first not in ("-h", "--help"):
                args.insert(0, self.default_subcommand)
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    from aiayn.cli import (
        attention,
        average,
        classify,
        data,
        demo,
        export,
        filter,
        generate,
        model_info,
        train,
        translate,
    )  # fmt: skip

    parser = CommandParser(
        prog="aiayn",
        description="The Transformer of 'Attention Is All You Need' and its family: train, "
        "translate, generate, classify, inspect.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log details (INFO level) to stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.add_parser(sub)
    train.add_parser(sub)
    translate.add_translate_parser(sub)
    translate.add_evaluate_parser(sub)
    generate.add_parser(sub)
    classify.add_parser(sub)
    filter.add_parser(sub)
    average.add_parser(sub)
    export.add_parser(sub)
    data.add_parser(sub)
    model_info.add_parser(sub)
    attention.add_parser(sub)
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
    except KeyboardInterrupt as err:
        # Ctrl-C, or training stopped on SIGTERM/SIGINT after saving a checkpoint
        # (aiayn.train.trainer.Interrupted: its exit_code is 128 + the signal, 143 for SIGTERM)
        print(f"aiayn {args.command}: interrupted" + (f": {err}" if str(err) else ""),
              file=sys.stderr)  # fmt: skip
        return getattr(err, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
