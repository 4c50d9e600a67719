"""Patch embedding (ViT, Dosovitskiy et al. 2021, eq. 1): an image as a sequence of tokens.

    image (B, C, H, W) → p×p patches, row by row → flatten each to C·p·p → ·E + b → (B, N, D)

with N = (H/p)·(W/p). One linear map E shared by every patch is exactly a convolution with a
p×p kernel and stride p (what timm writes, `Conv2d(C, D, p, stride=p)`); the linear form says
what the model sees. A patch is flattened channel-major, (C, p, p), the layout of the
convolution's kernel, so E = conv.weight.reshape(D, C·p·p) (tested).

ViT's learned [CLS] token, when asked for, is prepended: its final vector is what the
classification head reads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aiayn.nn.trace import record


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches, row-major over the grid.

    Shape: images (B, C, H, W), H and W multiples of p -> (B, (H/p)·(W/p), C·p·p).
    """
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f"image size {H}×{W} is not a multiple of the patch size {p}")
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, h, p, w, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, p, p): channel-major inside a patch
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C·p·p)


class PatchEmbedding(nn.Module):
    """Images -> patch tokens (B, N, D), with a learned [CLS] token first when `cls_token`."""

    def __init__(self, patch_size: int, channels: int, d_model: int, cls_token: bool) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(channels * patch_size * patch_size, d_model)  # E, b of eq. 1
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if cls_token else None

    @property
    def prefix(self) -> int:
        """Tokens before the patches (1 with [CLS], else 0)."""
        return 0 if self.cls is None else 1

    def forward(self, images: Tensor) -> Tensor:
        """Shape: images (B, C, H, W) -> (B, prefix + (H/p)·(W/p), D)."""
        x = self.proj(patchify(images, self.patch_size))  # (B, N, D)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        record("patch embedding (+ [CLS])" if self.cls is not None else "patch embedding", x)
        return x  # (B, prefix + N, D)


__all__ = ["PatchEmbedding", "patchify"]
