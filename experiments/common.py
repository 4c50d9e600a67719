"""What every experiment shares: its command line (--out, --seed, --smoke), the figures file
and the plot. An experiment is a module with `run(out, seed, smoke) -> dict` and a `main`
built by `cli`; its figures are computed by the run, never typed in (issue 29)."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

Run = Callable[..., dict[str, Any]]  # run(out, seed, smoke, **options) -> figures


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's and torch's global generators; a torch generator of the same seed."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def write_figures(out: Path, name: str, figures: dict[str, Any]) -> Path:
    """`figures` as `out/name.json` (written whole, then renamed: never half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, grid: bool = True) -> None:
    """Grid every axis (unless told not: images), lay out, write `path` (its folder made) and
    free the figure."""
    for ax in fig.axes if grid else ():
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def cli(
    name: str,
    doc: str,
    run: Run,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Callable[[list[str] | None], dict[str, Any]]:
    """The `main` of an experiment: parse --out/--seed/--smoke, run, write `name.json`.

    `options` adds an experiment's own flags; their values reach `run` as keyword arguments
    (`--data DIR` → `run(out, seed, smoke, data=DIR)`)."""

    def main(argv: list[str] | None = None) -> dict[str, Any]:
        p = argparse.ArgumentParser(
            prog=f"python -m experiments.{name}",
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--out",
            type=Path,
            default=Path("runs") / "why",
            help="where the plot and the JSON of figures go (default: runs/why)",
        )
        p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
        p.add_argument(
            "--smoke",
            action="store_true",
            help="a seconds-long version that checks the code path, not the answer",
        )
        if options is not None:
            options(p)
        extra = vars(p.parse_args(argv))
        args = argparse.Namespace(**{k: extra.pop(k) for k in ("out", "seed", "smoke")})
        start = time.perf_counter()
        figures = run(args.out, args.seed, args.smoke, **extra)
        figures["meta"] = {
            "seed": args.seed,
            "smoke": args.smoke,
            "minutes": round((time.perf_counter() - start) / 60, 2),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
        path = write_figures(args.out, name, figures)
        print(f"{name}: figures in {path}")
        return figures

    return main
