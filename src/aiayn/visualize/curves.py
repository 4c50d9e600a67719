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
