"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): which
patches a ViT's prediction draws on, through all its layers.

Each layer's attention, averaged over heads, with the residual connection counted as an equal
share of identity and rows renormalised, says how much each token's output takes from each
token's input:

    Ã_l = normalise_rows(½·mean_h A_l + ½·I)        rollout = Ã_L · … · Ã_2 · Ã_1

The row of [CLS] (or, with average pooling, the mean of the patch rows) over the patch columns
is the patches' share in what the head reads. `plot_rollout` lays it over the image.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor

from aiayn.visualize.figure import save_figure


def attention_rollout(weights: list[Tensor], prefix: int) -> Tensor:
    """The rollout of per-layer attention weights onto the patch grid, scaled to max 1.

    Shape: weights [(B, H, T, T)] per layer (first layer first), T = prefix + g²
    -> (B, g, g), each image's map in [0, 1].
    """
    if not weights:
        raise ValueError("attention rollout needs the attention weights of at least one layer")
    B, _, T, _ = weights[0].shape
    eye = torch.eye(T, dtype=torch.float64, device=weights[0].device)
    rollout = eye.expand(B, T, T)
    for w in weights:
        a = 0.5 * w.double().mean(dim=1) + 0.5 * eye  # (B, T, T): attention + residual
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout  # (B, T, T): output token ← input token, through this layer
    # [CLS]'s row over the patch columns; average pooling reads every row alike
    relevance = rollout[:, 0, prefix:] if prefix else rollout.mean(dim=1)  # (B, g²)
    g = math.isqrt(T - prefix)
    relevance = relevance.reshape(B, g, g)
    return (relevance / relevance.amax(dim=(1, 2), keepdim=True)).float()


def plot_rollout(
    image: Tensor, relevance: Tensor, path: str | os.PathLike, title: str = ""
) -> Path:
    """A PNG of the image beside the image with the rollout map laid over it.

    Shape: image (C, S, S) uint8 (C = 1 or 3), relevance (g, g) in [0, 1].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pixels = image.permute(1, 2, 0).cpu().numpy()  # (S, S, C)
    grey = pixels.shape[-1] == 1
    shown = pixels[..., 0] if grey else pixels
    S = pixels.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.3))
    for ax in axes:
        ax.imshow(shown, cmap="gray" if grey else None, extent=(0, S, S, 0),
                  interpolation="nearest")  # fmt: skip
        ax.set_axis_off()
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(relevance.cpu().numpy(), cmap="jet", alpha=0.5, extent=(0, S, S, 0),
                   interpolation="bilinear", vmin=0.0, vmax=1.0)  # fmt: skip
    axes[1].set_title("attention rollout", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["attention_rollout", "plot_rollout"]
