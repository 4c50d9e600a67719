"""Run the experiments of docs/why.md, in the order of its questions, or list them.

    python -m experiments --list                 # each one, its questions, its last run's minutes
    python -m experiments --out docs/why         # all of them, one after another
    python -m experiments sqrt_dk norms --smoke  # some, in seconds (checks the code paths)

Each experiment is also its own command (`python -m experiments.NAME --help`); this runs their
`main` with --out, --seed and --smoke, and the ones that need data (Multi30k, Tiny
Shakespeare) with their defaults. The total it prints is the sum of the runs' own minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

#: (module, the QUESTIONS.md numbers it answers), in the order of docs/why.md
EXPERIMENTS = [
    ("table3", "1, 6, 17, 21 (D), 22 (D)"),
    ("qk_tied", "2"),
    ("additive", "3"),
    ("sqrt_dk", "4"),
    ("heads", "9, 35"),
    ("embedding_scale", "10"),
    ("sinusoid", "11"),
    ("positions", "12, 13"),
    ("residuals", "15"),
    ("norms", "16"),
    ("norm_placement", "21"),
    ("batching", "23"),
    ("subwords", "24"),
    ("recurrence", "26, 27"),
    ("decoding", "31"),
    ("pooling_text", "34"),
]
NAMES = [name for name, _ in EXPERIMENTS]


def last_minutes(out: Path, name: str) -> float | None:
    """The wall minutes of the last full (not smoke) run whose figures are in `out`."""
    path = out / f"{name}.json"
    if not path.is_file():
        return None
    figures = json.loads(path.read_text(encoding="utf-8"))
    meta = figures.get("meta", {})
    if meta.get("smoke"):
        return None
    # an experiment that keeps its runs between calls (table3) counts all of their minutes
    return max(meta.get("minutes") or 0.0, figures.get("compute_minutes", 0.0)) or None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"experiments to run (default: all): {', '.join(NAMES)}")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs") / "why",
                   help="where plots and figures go (default: runs/why)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--smoke", action="store_true", help="the seconds-long versions")
    p.add_argument("--list", action="store_true",
                   help="list them, with the minutes of their last runs in --out")  # fmt: skip
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        p.error(f"no experiment named {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    if args.list:
        total = 0.0
        for name, questions in EXPERIMENTS:
            minutes = last_minutes(args.out, name)
            total += minutes or 0.0
            shown = "not run" if minutes is None else f"{minutes:.1f} min"
            print(f"{name:16} questions {questions:28} {shown}")
        print(f"{'total':16} {'':38} {total:.1f} min")
        return
    total = time.perf_counter()
    for name in args.names or NAMES:
        module = importlib.import_module(f"experiments.{name}")
        flags = ["--out", str(args.out), "--seed", str(args.seed)]
        module.main(flags + (["--smoke"] if args.smoke else []))
    print(f"experiments: {(time.perf_counter() - total) / 60:.1f} minutes in all")


if __name__ == "__main__":
    main()
