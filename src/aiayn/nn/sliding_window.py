"""Sliding-window (local) self-attention in O(T·w) memory.

Query i attends only to keys within `window` positions of it:

    bidirectional (Longformer):   |i - j| <= window
    causal (Mistral):         0 <= i - j <= window

Dense attention with `band_mask` computes the same thing but builds (T, T) scores. Here the
sequence is cut into blocks of `window` positions; every key in the band of a query in block n
lies in block n-1, n or n+1 (n-1 or n when causal). Padding K/V by one block on each side and
taking overlapping strided views (`unfold`, no copy) gives each query block its 2 or 3 blocks of
keys, so scores are (B, H, n_blocks, window, 2·window or 3·window): O(T·w), not O(T²). Inside
those blocks the band, the sequence ends and the key padding mask are applied exactly, so the
result equals dense attention with `band_mask`.

Masks follow the package convention (`aiayn.nn.masks`): bool, True = may attend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aiayn.nn.dropout import dropout
from aiayn.nn.trace import record


def _check_window(window: int) -> None:
    if window < 0:
        raise ValueError(f"window must be >= 0 (0: each query sees only itself), got {window}")


def band_mask(
    T: int, window: int, causal: bool = False, device: torch.device | None = None
) -> Tensor:
    """The sliding-window rule as a dense mask, for short sequences and as a test reference.

    Query i may attend key j iff |i - j| <= window, or 0 <= i - j <= window when causal.

    Shape: -> (T, T) bool, True = may attend.
    """
    _check_window(window)
    pos = torch.arange(T, device=device)
    rel = pos[:, None] - pos[None, :]  # (T, T): i - j
    if causal:
        return (rel >= 0) & (rel <= window)
    return rel.abs() <= window


def sliding_window_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    window: int,
    causal: bool = False,
    key_mask: Tensor | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """softmax(QKᵀ/√d_k) V with each query restricted to keys within `window` positions.

    Shape: q, k, v (B, H, T, Dh); key_mask bool (B, 1, 1, T) or (B, T), True = real key
    -> out (B, H, T, Dh).

    window = 0: each query sees only itself. window >= T - 1: full (or causal) attention.
    A query whose band holds no allowed key (its whole band hidden by key_mask) gets an output
    row of zeros and zero gradients, not NaN. `dropout_p` applies to the weights; pass 0.0 in
    eval mode. Scores are computed in the input dtype, the softmax in float32.
    """
    _check_window(window)
    B, H, T, Dh = q.shape
    if k.shape[-2] != T or v.shape[-2] != T:
        raise ValueError(
            f"self-attention needs one length: q has T={T}, k {k.shape[-2]}, v {v.shape[-2]}"
        )
    if T == 0:
        return v.new_zeros(B, H, 0, v.shape[-1])

    # Block size: `window`, or the whole sequence when the band covers it (one block, no
    # neighbours). window = 0 uses blocks of 1 and needs no neighbours either.
    block = T if window >= T - 1 else max(window, 1)
    n_blocks = math.ceil(T / block)
    T_pad = n_blocks * block
    neighbours = n_blocks > 1 and window > 0
    left = block if neighbours else 0
    right = block if neighbours and not causal else 0
    ctx = left + block + right  # keys seen by one query block: 1, 2 or 3 blocks

    def key_blocks(x: Tensor) -> Tensor:
        """(B, H, T, D) -> (B, H, n_blocks, D, ctx), a strided view of the padded keys."""
        x = F.pad(x, (0, 0, left, T_pad - T + right))  # (B, H, left + T_pad + right, D)
        return x.unfold(-2, ctx, block)

    qb = F.pad(q, (0, 0, 0, T_pad - T)).reshape(B, H, n_blocks, block, Dh)  # (B, H, N, b, Dh)
    kb = key_blocks(k)  # (B, H, N, Dh, ctx): already Kᵀ per block
    vb = key_blocks(v).transpose(-2, -1)  # (B, H, N, ctx, Dv)

    # Same operation order as the dense math path, so fp32 results agree to rounding.
    scores = qb @ kb / math.sqrt(Dh)  # (B, H, N, b, ctx)
    record("local scores QKᵀ/√d_k", scores)

    # Query r of block n sits at n·b + r, key slot s at n·b + s - left: i - j = r - s + left,
    # the same for every block, so the band is one (b, ctx) mask.
    r = torch.arange(block, device=q.device)[:, None]
    s = torch.arange(ctx, device=q.device)[None, :]
    rel = r - s + left  # (b, ctx)
    band = ((rel >= 0) if causal else (rel >= -window)) & (rel <= window)  # (b, ctx)

    # Keys outside 0..T-1 (the block padding) and padded tokens: one per-key mask, padded
    # with False and unfolded exactly like K.
    if key_mask is None:
        real = torch.ones(1, T, dtype=torch.bool, device=q.device)  # (1, T)
    else:
        if key_mask.dtype != torch.bool or key_mask.shape[-1] != T or key_mask.dim() not in (2, 4):
            raise ValueError(
                f"key_mask must be bool (B, 1, 1, T) or (B, T) with T={T}, "
                f"got {key_mask.dtype} {tuple(key_mask.shape)}"
            )
        real = key_mask.reshape(key_mask.shape[0], T)  # (B, T)
    real = F.pad(real, (left, T_pad - T + right), value=False)  # (B|1, left + T_pad + right)
    real = real.unfold(-1, ctx, block)  # (B|1, N, ctx)
    allowed = band & real[:, None, :, None, :]  # (B|1, 1, N, b, ctx)

    # An empty row would be softmax over all -inf = NaN (and NaN gradients): give it finite
    # scores, then zero its weights with the rest of the masked entries.
    has_key = allowed.any(dim=-1, keepdim=True)  # (B|1, 1, N, b, 1)
    scores = scores.masked_fill(~allowed, float("-inf")).masked_fill(~has_key, 0.0)
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(v.dtype)  # (B, H, N, b, ctx)
    weights = weights.masked_fill(~allowed, 0.0)
    record("local weights softmax(scores)", weights)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)

    out = weights @ vb  # (B, H, N, b, Dv)
    out = out.reshape(B, H, T_pad, -1)[:, :, :T]  # (B, H, T, Dv)
    record("local weights · V", out)
    return out


__all__ = ["band_mask", "sliding_window_attention"]
