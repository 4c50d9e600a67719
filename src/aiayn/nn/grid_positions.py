"""Absolute positions of a 2-D grid of patch tokens (ViT), with interpolation.

A ViT's tokens are `prefix` special tokens ([CLS]) then a g×g grid of patches, row-major. Two
schemes, each a `PositionalEncoding` whose `embed` the stack calls like any other:

- learned (ViT): one vector per grid cell (and per prefix token), trained;
- sinusoidal (MAE, He et al. 2022): the paper's 1-D sinusoids (§3.5) of the row in one half of
  the features and of the column in the other; the prefix tokens get zeros.

An image of another size gives another grid g' × g'. Learned positions are then resampled
bicubically over the grid (Dosovitskiy et al. 2021, §3.2 "Fine-tuning and higher
resolution"; timm's `resample_abs_pos_embed`); sinusoids are evaluated at the new cells'
coordinates on the old scale (cell i sits at i·g/g'), the same continuous function sampled
more or less densely. At the trained size both are the trained table, exactly (tested).
The grid is square: images are resized to a square before they get here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.nn.positional import PositionalEncoding
from aiayn.nn.trace import record


def grid_side(tokens: int, prefix: int) -> int:
    """The side g of the square grid of `tokens - prefix` patch tokens."""
    n = tokens - prefix
    g = math.isqrt(max(n, 0))
    if n <= 0 or g * g != n:
        raise ValueError(f"{n} patch tokens do not form a square grid")
    return g


def sinusoid_grid_table(side: int, d_model: int, scale: float = 1.0) -> Tensor:
    """2-D sinusoids of a side × side grid: features [0, D/2) encode the row, [D/2, D) the
    column, each with the paper's PE of that coordinate (sin on even features, cos on odd).
    `scale`: the coordinate of cell i is i·scale (interpolation onto another grid).

    Shape: -> (side², d_model) float32, row-major over the grid.
    """
    if d_model % 4:
        raise ValueError(f"2-D sinusoids need d_model divisible by 4, got {d_model}")
    half = d_model // 2
    coords = torch.arange(side, dtype=torch.float64) * scale  # (g,)
    inv_freq = 10000.0 ** (-torch.arange(0, half, 2, dtype=torch.float64) / half)  # (D/4,)
    angle = coords[:, None] * inv_freq  # (g, D/4)
    pe = torch.zeros(side, half, dtype=torch.float64)  # one coordinate's encoding: (g, D/2)
    pe[:, 0::2], pe[:, 1::2] = angle.sin(), angle.cos()
    rows = pe[:, None, :].expand(side, side, half)  # (g, g, D/2): depends on the row
    cols = pe[None, :, :].expand(side, side, half)  # (g, g, D/2): on the column
    return torch.cat([rows, cols], dim=-1).reshape(side * side, d_model).float()


def resample_grid(table: Tensor, side: int) -> Tensor:
    """Learned grid positions resampled bicubically to side × side (identity at the same size).

    Shape: table (g², D) -> (side², D).
    """
    g = math.isqrt(table.shape[0])
    if side == g:
        return table
    grid = table.reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid.float(), size=(side, side), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(side * side, -1).to(table.dtype)  # (side², D)


class LearnedGridPositions(PositionalEncoding):
    """One learned vector per prefix token and per cell of the trained g × g grid (ViT)."""

    def __init__(self, d_model: int, side: int, prefix: int = 0) -> None:
        super().__init__()
        self.side, self.prefix = side, prefix
        # timm's layout: (1, prefix + g², D), so its pos_embed loads unchanged
        self.weight = nn.Parameter(torch.empty(1, prefix + side * side, d_model))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def table(self, side: int) -> Tensor:
        """Shape: -> (prefix + side², D); resampled when side ≠ the trained grid's."""
        weight = self.weight[0]  # (prefix + g², D)
        return torch.cat([weight[: self.prefix], resample_grid(weight[self.prefix :], side)])

    def embed(self, x: Tensor, offset: int | Tensor = 0) -> Tensor:
        """Shape: x (B, prefix + side², D) -> the same, plus positions."""
        out = x + self.table(grid_side(x.shape[1], self.prefix)).to(x.dtype)
        record("+ learned grid positions", out)
        return out


class SinusoidalGridPositions(PositionalEncoding):
    """Fixed 2-D sinusoids over the trained g × g grid; zeros for the prefix tokens (MAE)."""

    def __init__(self, d_model: int, side: int, prefix: int = 0) -> None:
        super().__init__()
        self.side, self.prefix, self.d_model = side, prefix, d_model
        # Not persistent: a function of the sizes, not a learned weight.
        self.register_buffer("grid", sinusoid_grid_table(side, d_model), persistent=False)

    def table(self, side: int) -> Tensor:
        """Shape: -> (prefix + side², D), sampled on the trained grid's scale."""
        grid = self.grid
        if side != self.side:
            grid = sinusoid_grid_table(side, self.d_model, self.side / side).to(grid.device)
        return torch.cat([grid.new_zeros(self.prefix, self.d_model), grid])

    def embed(self, x: Tensor, offset: int | Tensor = 0) -> Tensor:
        """Shape: x (B, prefix + side², D) -> the same, plus positions."""
        out = x + self.table(grid_side(x.shape[1], self.prefix)).to(x.dtype)
        record("+ 2-D sinusoidal positions", out)
        return out


def build_grid_positional(kind: str, d_model: int, side: int, prefix: int) -> PositionalEncoding:
    """The scheme named in `VisionConfig.positional`."""
    if kind == "learned":
        return LearnedGridPositions(d_model, side, prefix)
    if kind == "sinusoidal":
        return SinusoidalGridPositions(d_model, side, prefix)
    raise ValueError(f"unknown grid positional encoding {kind!r}")


__all__ = [
    "LearnedGridPositions",
    "SinusoidalGridPositions",
    "build_grid_positional",
    "grid_side",
    "resample_grid",
    "sinusoid_grid_table",
]
