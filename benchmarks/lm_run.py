"""What a language-model run reached, for docs/results.md: its best validation loss, at how
many training tokens and minutes, and the loss curve against tokens as a PNG.

    python -m benchmarks.lm_run --run runs/shakespeare_char --target 1.47 \
        --png docs/shakespeare_char.png

Tokens are steps × batch × context × update_freq from the run's own task_config.json,
config.json and train_config.json (a character model: one token per character), so the
figure is the budget the issue counts, whichever machine ran it. Minutes are the run's clock
(training and validation, without the time between a stop and its resume), as noisy as the
machine was.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiayn.visualize.curves import plot_loss_by_tokens, read_metrics


def tokens_per_step(run: Path) -> int:
    """Training tokens in one optimiser step of the run in `run`."""
    task = json.loads((run / "task_config.json").read_text())
    model = json.loads((run / "config.json").read_text())
    train = json.loads((run / "train_config.json").read_text())
    context = task.get("context") or model["max_len"]
    return task["batch_size"] * context * train.get("update_freq", 1)


def summarise(run: Path, target: float | None = None) -> dict:
    """The run's best validation loss, where it came, and whether it met `target`."""
    per_step = tokens_per_step(run)
    valid = read_metrics(run / "metrics.jsonl", "valid")
    if not valid:
        raise SystemExit(f"{run}/metrics.jsonl: no validation yet")
    best = min(valid, key=lambda r: r["loss"])
    first = None if target is None else next((r for r in valid if r["loss"] <= target), None)
    return {
        "run": str(run),
        "tokens_per_step": per_step,
        "steps": valid[-1]["step"],
        "tokens": valid[-1]["step"] * per_step,
        "minutes": round(valid[-1].get("minutes", float("nan")), 1),
        "last_loss": round(valid[-1]["loss"], 4),
        "best_loss": round(best["loss"], 4),
        "best_bpc": round(best.get("bpc", float("nan")), 4),
        "best_step": best["step"],
        "best_tokens": best["step"] * per_step,
        "target": target,
        "target_met_at_tokens": None if first is None else first["step"] * per_step,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="the run's --out directory")
    p.add_argument("--target", type=float, help="the validation loss to reach (a line)")
    p.add_argument("--png", type=Path, help="write the loss curve against tokens here")
    p.add_argument("--title", default="", help="the plot's title")
    args = p.parse_args(argv)
    summary = summarise(args.run, args.target)
    if args.png:
        plot_loss_by_tokens(args.run / "metrics.jsonl", summary["tokens_per_step"], args.png,
                            target=args.target, title=args.title)  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
