"""The normalisations a residual stream can use, one switch (`LayerConfig.norm`):

    layer  LayerNorm (Ba et al. 2016; the paper's §3.1): each token's features to mean 0,
           variance 1, then a learned scale and shift — per token, so batch and length do
           not matter;
    rms    RMSNorm (Zhang & Sennrich 2019; LLaMA): divide by the root mean square only, a
           learned scale, no mean and no shift — cheaper, as good in practice;
    batch  BatchNorm over the real tokens of the batch (Ioffe & Szegedy 2015): each feature
           to mean 0, variance 1 across every real token of every sentence, running averages
           at evaluation. Here only to answer "why not BatchNorm?" (docs/why.md): its
           statistics depend on which sentences share the batch and how long they are, and
           training and evaluation normalise differently.

Every norm takes `(x, real)`, `real` (B, T) marking the non-padding tokens; only BatchNorm
reads it (padding must not enter its statistics).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` with the norms' call signature (`real` is ignored: per token)."""

    def forward(self, x: Tensor, real: Tensor | None = None) -> Tensor:
        return super().forward(x)


class RMSNorm(nn.Module):
    """x / √(mean(x²) + ε) · g over the last dimension, in fp32 (as LayerNorm under autocast).

    Shape: x (…, D) -> (…, D).
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor, real: Tensor | None = None) -> Tensor:
        x32 = x.float()
        scale = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (…, 1)
        return (x32 * scale).to(x.dtype) * self.weight.to(x.dtype)


class TokenBatchNorm(nn.Module):
    """BatchNorm1d over the feature dimension, its statistics taken over the real tokens of
    the batch only; running averages (momentum 0.1, unbiased variance, as PyTorch's) used in
    evaluation.

    Shape: x (B, T, D), real (B, T) bool | None (None: every token is real) -> (B, T, D).
    """

    def __init__(self, d_model: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.register_buffer("running_mean", torch.zeros(d_model))
        self.register_buffer("running_var", torch.ones(d_model))

    def forward(self, x: Tensor, real: Tensor | None = None) -> Tensor:
        x32 = x.float()
        if self.training:
            tokens = x32[real] if real is not None else x32.reshape(-1, x.shape[-1])  # (N, D)
            mean = tokens.mean(dim=0)  # (D,)
            var = tokens.var(dim=0, unbiased=False)
            with torch.no_grad():
                n = tokens.shape[0]
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x32 - mean) * torch.rsqrt(var + self.eps)
        return (y * self.weight + self.bias).to(x.dtype)


def build_norm(kind: str, d_model: int, eps: float) -> nn.Module:
    """The norm named in `LayerConfig.norm`."""
    if kind == "layer":
        return LayerNorm(d_model, eps=eps)
    if kind == "rms":
        return RMSNorm(d_model, eps)
    if kind == "batch":
        return TokenBatchNorm(d_model, eps)
    raise ValueError(f"unknown norm {kind!r}; choose layer, rms or batch")


__all__ = ["LayerNorm", "RMSNorm", "TokenBatchNorm", "build_norm"]
