"""The attention explorer's outputs: one self-contained HTML page and a PNG grid per kind.

The page (`explorer.html` beside this file, data inlined as JSON, scripts and styles inline, no
network) has a head view (hover a token: lines to the tokens it attends to, one colour per
head, heads switched by checkboxes), a model view (every layer × head; click to enlarge),
for vision models the rollout over the image and each layer's map over the patch grid, and
for translation the beam search as a tree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import Tensor

from aiayn.io import atomic_write_text
from aiayn.visualize.explorer import Exploration

TEMPLATE = Path(__file__).with_name("explorer.html")
PAGE_NAME = "attention.html"


def page_data(exploration: Exploration) -> dict:
    """What the page's script reads: plain lists, weights rounded to 4 decimals."""
    e = exploration
    data = {
        "title": f"attention explorer: {e.model} ({e.arch.replace('_', '-')})",
        "summary": e.summary,
        "parity": [[name, diff] for name, diff in e.parity],
        "parity_note": parity_note(e),
        "kinds": [
            {
                "key": k.key,
                "title": k.title,
                "queries": k.queries,
                "keys": k.keys,
                "weights": _rounded(k.weights),
            }
            for k in e.kinds
        ],
        "beam": e.beam,
        "image": None,
        "rollout": None,
        "patch_maps": [],
    }
    if e.image is not None:
        C, S, _ = e.image.shape
        data["image"] = {"channels": C, "size": S, "pixels": e.image.reshape(-1).tolist()}
    if e.rollout is not None:
        data["rollout"] = _rounded(e.rollout)
        data["patch_maps"] = _patch_maps(e)
    return data


def parity_note(e: Exploration) -> str:
    """One sentence on where the weights come from and how far that pass is from the model's."""
    if not e.parity:
        return ""
    worst = max(diff for _, diff in e.parity)
    if all(k.key == "pooling" for k in e.kinds):
        return (
            "No attention here: the pooling mixer's fixed weights are read off the mixer with "
            f"one-hot tokens (the model's two passes differ by {worst:.1e} over "
            f"{len(e.parity)} blocks)."
        )
    return (
        "Weights recomputed by the reference (math) path of attention; the largest difference "
        "between any block's output in that pass and in the model's own fast (SDPA) pass: "
        f"{worst:.1e} over {len(e.parity)} blocks."
    )


def _patch_maps(e: Exploration) -> list[dict]:
    """Each layer's head-averaged attention of the read-out over the patches, on the grid:
    [CLS]'s row when there is one, else the mean of every row (average pooling)."""
    kind = next(k for k in e.kinds if k.key == "self")
    prefix = len(kind.keys) - e.rollout.shape[0] ** 2
    maps = []
    for layer, w in enumerate(kind.weights.mean(dim=1)):  # (T, T): heads averaged
        row = w[0, prefix:] if prefix else w.mean(dim=0)  # (g²,)
        grid = row.reshape(e.rollout.shape)  # (g, g)
        maps.append({"title": f"layer {layer + 1}", "map": _rounded(grid / grid.max())})
    return maps


def _rounded(t: Tensor) -> list:
    return t.float().mul(1e4).round().div(1e4).tolist()


def render_page(exploration: Exploration) -> str:
    """The page as one HTML string."""
    # "</" cannot close the data's <script> element when written "<\/" (still valid JSON)
    data = json.dumps(page_data(exploration), ensure_ascii=False).replace("</", "<\\/")
    title = f"attention: {exploration.model}".replace("&", "&amp;").replace("<", "&lt;")
    return (
        TEMPLATE.read_text(encoding="utf-8").replace("__TITLE__", title).replace("__DATA__", data)
    )


def save_exploration(exploration: Exploration, out_dir: str | os.PathLike) -> list[Path]:
    """Write the page, a PNG grid (layers × heads) per kind of attention, and for vision
    models the rollout over the image, into `out_dir` (created); returns the paths."""
    from aiayn.visualize.attention import plot_attention_grid
    from aiayn.visualize.rollout import plot_rollout

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in exploration.kinds:
        title = f"{kind.title}: rows attend to columns"
        written.append(plot_attention_grid(kind.weights, kind.queries, kind.keys,
                                           out / f"{kind.key}.png", title))  # fmt: skip
    if exploration.rollout is not None and exploration.image is not None:
        written.append(plot_rollout(exploration.image, exploration.rollout, out / "rollout.png"))
    atomic_write_text(out / PAGE_NAME, render_page(exploration))
    written.append(out / PAGE_NAME)
    return written


__all__ = ["PAGE_NAME", "page_data", "render_page", "save_exploration"]
