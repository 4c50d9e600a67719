"""`aiayn average`: average the last K checkpoints of a run into a model directory."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from aiayn.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "average",
        help="average the weights of a run's last K checkpoints (§6.1)",
        description="Element-wise mean of the last K checkpoints in RUN/checkpoints, written "
        "as a model directory (config, tokenizer, averaged weights). The paper averages the "
        "last 5 checkpoints for base models and the last 20 for big ones.",
    )
    p.add_argument(
        "--run", dest="run_dir", required=True, help="training output directory (with checkpoints/)"
    )
    p.add_argument("--last", type=int, required=True, help="how many checkpoints to average")
    p.add_argument("--out", required=True, help="model directory to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiayn.train.checkpoint import (
        CHECKPOINTS_DIR,
        WEIGHTS,
        average_checkpoints,
        list_checkpoints,
    )

    run_dir, out = Path(args.run_dir), Path(args.out)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory (--run is a training run's --out)")
    found = list_checkpoints(run_dir / CHECKPOINTS_DIR)
    if not found:
        raise ConfigError(
            f"{run_dir}: no checkpoints in {run_dir / CHECKPOINTS_DIR}; is it a training run's "
            "--out directory?"
        )
    if args.last < 1 or len(found) < args.last:
        raise ConfigError(
            f"{run_dir / CHECKPOINTS_DIR} holds {len(found)} checkpoints; "
            f"--last must be 1..{len(found)}"
        )
    chosen = found[-args.last :]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer.src.json", "tokenizer.tgt.json"):
        if (run_dir / name).is_file() and run_dir.resolve() != out.resolve():
            shutil.copyfile(run_dir / name, out / name)
    average_checkpoints(chosen, out / WEIGHTS)
    print(json.dumps({"out": str(out), "averaged_steps": [c.step for c in chosen]}))
    return 0
