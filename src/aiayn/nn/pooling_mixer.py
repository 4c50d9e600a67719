"""The pooling token mixer of PoolFormer (Yu et al. 2022, "MetaFormer Is Actually What You Need
for Vision", eq. 4): in place of self-attention, each token takes the average of its
neighbourhood on the 2-D patch grid, minus itself:

    T' = AvgPool_{k×k, stride 1, pad k//2}(T) − T

The average counts only the cells inside the grid (`count_include_pad=False`), so a border
token averages its real neighbours, not zeros. The identity is subtracted because the block's
residual adds it back. No parameters; mixing reaches k//2 cells per block.

It answers the call a block makes of its self-attention (`Block(layer, mixer=...)`), so the
same block serves ViT and PoolFormer. Tokens must form a square grid (no [CLS] token).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.nn.grid_positions import grid_side
from aiayn.nn.trace import record


class PoolingMixer(nn.Module):
    """AvgPool(k×k, stride 1, same padding, count_include_pad=False) − identity on the grid."""

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        if pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f"pool_size must be odd, got {pool_size}")
        self.pool_size = pool_size

    def forward(
        self, query: Tensor, mask: Tensor | None = None, need_weights: bool = False, **_: object
    ) -> tuple[Tensor, None]:
        """Shape: query (B, N, D), N = g² grid tokens row-major -> out (B, N, D), None.

        The keywords of attention (mask, cache, positional, is_causal) are accepted and have
        no meaning here; a mask would, so one is refused. There are no weights to return.
        """
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

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}"


__all__ = ["PoolingMixer"]
