"""Saving matplotlib figures as PNG, atomically."""

from __future__ import annotations

import os
from pathlib import Path

from aiayn.io import atomic_path


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write `fig` to `path` (PNG) whole or not at all, then close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)
