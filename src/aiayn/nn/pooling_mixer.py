"""The pooling token mixer of PoolFormer (Yu et al. 2022, "MetaFormer Is Actually What You Need
for Vision", eq. 4): in place of self-attention, each token takes the average of its
neighbourhood on the 2-D patch grid, minus itself:

    T' = AvgPool_{k×k, stride 1, pad k//2}(T) − T

The average counts only the cells inside the grid (`count_include_pad=False`), so a border
token averages its real neighbours, not zeros. The identity is subtracted because the block's
residual adds it back. No parameters; mixing reaches k//2 cells per block.

It answers the call a block makes of its self-attention (`Block(layer, mixer=...)`), so the
same block serves ViT and PoolFormer. Tokens must form a square grid (no [CLS] token).

`PoolingMixer(k, dims=1)` pools over a sequence instead (text, docs/why.md question 34): each
token takes the average of the real tokens among its k neighbours, minus itself. Padding is
left out of every average through the key-padding mask, so padding changes no real token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.nn.grid_positions import grid_side
from aiayn.nn.trace import record


class PoolingMixer(nn.Module):
    """AvgPool(k×k, stride 1, same padding, count_include_pad=False) − identity on the grid
    (dims=2), or AvgPool(k) over the real tokens of a sequence − identity (dims=1)."""

    def __init__(self, pool_size: int = 3, dims: int = 2) -> None:
        super().__init__()
        if pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f"pool_size must be odd, got {pool_size}")
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 (a sequence) or 2 (a square grid), got {dims}")
        self.pool_size, self.dims = pool_size, dims

    def forward(
        self, query: Tensor, mask: Tensor | None = None, need_weights: bool = False, **_: object
    ) -> tuple[Tensor, None]:
        """Shape: query (B, N, D), N = g² grid tokens row-major (dims=2) or a sequence (dims=1),
        mask (dims=1 only) bool key padding (B, 1, 1, N), True = real -> out (B, N, D), None.

        The other keywords of attention (cache, positional, is_causal) are accepted and have
        no meaning here. A grid takes no mask. There are no weights to return.
        """
        if self.dims == 1:
            return self._sequence(query, mask), None
        if mask is not None:
            raise ValueError("the pooling mixer takes no mask: every grid cell is real")
        B, N, D = query.shape
        g = grid_side(N, 0)
        grid = query.transpose(1, 2).reshape(B, D, g, g)  # (B, D, g, g)
        pooled = F.avg_pool2d(
            grid, self.pool_size, stride=1, padding=self.pool_size // 2, count_include_pad=False
        )  # (B, D, g, g)
        out = (pooled - grid).reshape(B, D, N).transpose(1, 2)  # (B, N, D)
        record("pooling mixer AvgPool(x) − x", out)
        return out, None

    def _sequence(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Shape: x (B, T, D), mask (B, 1, 1, T) | None -> (B, T, D)."""
        B, T, _ = x.shape
        if mask is not None and mask.shape[-2] != 1:
            raise ValueError("the 1-D pooling mixer takes a key-padding mask (B, 1, 1, T) only")
        real = (
            torch.ones(B, 1, T, dtype=x.dtype, device=x.device)
            if mask is None
            else mask.reshape(B, 1, T).to(x.dtype)
        )  # (B, 1, T)
        k = self.pool_size
        # Mean of the real neighbours: pooled sums of x·real over pooled counts of real (the
        # window sizes cancel); a window with no real token gives 0.
        total = F.avg_pool1d(x.transpose(1, 2) * real, k, 1, k // 2, count_include_pad=False)
        count = F.avg_pool1d(real, k, 1, k // 2, count_include_pad=False)  # (B, 1, T)
        pooled = total / count.clamp_min(torch.finfo(x.dtype).tiny)  # (B, D, T)
        out = (pooled.transpose(1, 2) - x) * real.transpose(1, 2)  # (B, T, D), 0 on padding
        record("pooling mixer AvgPool1d(x) − x", out)
        return out

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}, dims={self.dims}"


__all__ = ["PoolingMixer"]
