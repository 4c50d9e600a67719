"""Training curves from a run's `metrics.jsonl`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from aiayn.visualize.figure import save_figure


def read_metrics(path: str | os.PathLike, split: str) -> list[dict]:
    """The records of one split ("train", "valid", …) from a metrics.jsonl file, in order."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("split") == split:
                records.append(record)
    return records


def validation_curve(metrics_file: str | os.PathLike, metric: str) -> tuple[list, list]:
    """(minutes the run had trained, values) of a validation metric. The minutes are the run's
    clock, which skips the time between a stop and its resume; logs older than that clock
    give minutes since the first start."""
    starts = read_metrics(metrics_file, "start")  # one per (re)start; absent in old logs
    with open(metrics_file, encoding="utf-8") as f:
        start = starts[0]["time"] if starts else json.loads(f.readline())["time"]
    valid = read_metrics(metrics_file, "valid")
    minutes = [r.get("minutes", (r["time"] - start) / 60) for r in valid]
    return minutes, [r[metric] for r in valid]


def plot_validation_curve(
    metrics_file: str | os.PathLike | dict[str, str | os.PathLike],
    metric: str,
    out_png: str | os.PathLike,
    title: str = "",
) -> Path:
    """Plot a validation metric against wall-clock minutes since the run started.

    `metrics_file` is one run's metrics.jsonl, or {label: metrics.jsonl} to overlay runs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = metrics_file if isinstance(metrics_file, dict) else {"": metrics_file}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, path in runs.items():
        minutes, values = validation_curve(path, metric)
        ax.plot(minutes, values, marker="o", markersize=3, label=label or None)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    ax.set_xlabel("wall-clock minutes (training + validation)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title or f"validation {metric} vs time", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_png)


def loss_by_step(metrics_file: str | os.PathLike) -> dict[str, tuple[list[int], list[float]]]:
    """{"train": (steps, losses), "valid": (steps, losses)} of one run, across its resumes.

    A training record covers the `step_window` steps before it; each (re)start record says
    the step the run goes on from, and a record past it (logged before a kill, then trained
    again after the resume) gives way to the one trained after."""
    train: dict[int, float] = {}
    valid: dict[int, float] = {}
    step = 0
    with open(metrics_file, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            split = record.get("split")
            if split == "start":
                step = record["step"]
                for kept in (train, valid):
                    for later in [s for s in kept if s > step]:
                        del kept[later]
            elif split == "train":
                step += record["step_window"]
                train[step] = record["loss"]
            elif split == "valid":
                valid[record["step"]] = record["loss"]
    return {name: (list(d), list(d.values())) for name, d in (("train", train), ("valid", valid))}


def plot_loss_by_tokens(
    metrics_file: str | os.PathLike,
    tokens_per_step: int,
    out_png: str | os.PathLike,
    target: float | None = None,
    title: str = "",
) -> Path:
    """Training and validation loss against training tokens (millions), the budget unit
    that does not depend on the machine; `target` draws a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = loss_by_step(metrics_file)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, style in (("train", dict(alpha=0.5, lw=1)), ("valid", dict(marker="o", ms=3))):
        steps, losses = curves[name]
        ax.plot([s * tokens_per_step / 1e6 for s in steps], losses, label=name, **style)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title or "loss vs training tokens", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_png)
