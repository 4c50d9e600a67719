"""Sliding-window (local) self-attention in O(T·w) memory — a variant, not in the paper.

Query i attends only to keys within `window` positions of it:

    bidirectional (Longformer):   |i - j| <= window
    causal (Mistral):         0 <= i - j <= window

Two parts: `sliding_window_attention`, the blocked kernel on (B, H, T, Dh) heads, and
`SlidingWindowAttention`, a `MultiHeadAttention` (same W_Q, W_K, W_V, W_O, same state dict)
whose `attend` applies the window, so a layer swaps one module for the other.

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
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from aiayn.nn.attention import Impl, MultiHeadAttention, scaled_dot_product_attention
from aiayn.nn.dropout import dropout
from aiayn.nn.masks import combine
from aiayn.nn.trace import record

if TYPE_CHECKING:
    from aiayn.nn.kv_cache import KVCache, StaticKV
    from aiayn.nn.positional import PositionalEncoding


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


def _attention_guarded(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    bias: Tensor | None,
    dropout_p: float,
    impl: Impl,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:
    """`scaled_dot_product_attention`, except that a query allowed no key gets a row of zeros
    (output and weights) instead of NaN, as in `sliding_window_attention`.

    A band can hide every key of a query that full attention would not (a padded query further
    than the window from any real token); NaN there would reach real positions through 0 · NaN.
    Shape: as `scaled_dot_product_attention`.
    """
    if mask is None:
        return scaled_dot_product_attention(q, k, v, None, bias, dropout_p, impl, need_weights)
    has_key = mask.any(dim=-1, keepdim=True)  # (…, T, 1)
    out, weights = scaled_dot_product_attention(
        q, k, v, mask | ~has_key, bias, dropout_p, impl, need_weights
    )
    out = out.masked_fill(~has_key, 0.0)
    if weights is not None:
        weights = weights.masked_fill(~has_key, 0.0)
    return out, weights


def _key_padding_mask(mask: Tensor | None, T: int) -> Tensor | None:
    """The window path's mask as (B|1, 1, 1, T) bool, or ValueError for any other mask.

    Without a cache the window itself supplies the band and the causality; the only mask left
    to give is which keys are padding. A (T, S) mask (causal, band, …) would restrict queries
    in a way the blocked O(T·w) path cannot apply.
    """
    if mask is None:
        return None
    m = mask.reshape((1,) * max(0, 4 - mask.dim()) + tuple(mask.shape))
    if (
        mask.dtype != torch.bool
        or m.dim() != 4
        or m.shape[1:3] != (1, 1)
        or m.shape[3] not in (1, T)
    ):
        raise ValueError(
            "windowed self-attention without a cache takes only a key-padding mask, bool and "
            f"broadcastable to (B, 1, 1, T) with T={T} (the window supplies band and causality); "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    return m.expand(m.shape[0], 1, 1, T)


class SlidingWindowAttention(MultiHeadAttention):
    """Multi-head self-attention in which query i sees only keys within `window` of it.

    Query i attends only to keys j with |i - j| <= window, or 0 <= i - j <= window when
    `causal`. Self-attention only (no `key_value`, no `StaticKV`). The window adds no
    parameters: the state dict is `MultiHeadAttention`'s, so weights load either way.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        impl: Impl = "auto",
        key_dim: int | None = None,
        *,
        window: int,
        causal: bool = False,
    ) -> None:
        super().__init__(d_model, n_heads, dropout, bias, impl, key_dim)
        if isinstance(window, bool) or not isinstance(window, int):
            raise ValueError(f"window must be an int, got {window!r}")
        _check_window(window)
        self.window, self.causal = window, causal

    def forward(
        self,
        query: Tensor,
        key_value: Tensor | None = None,
        mask: Tensor | None = None,
        cache: KVCache | StaticKV | None = None,
        positional: PositionalEncoding | None = None,
        need_weights: bool = False,
        is_causal: bool = False,  # unused: the window's own `causal` decides
    ) -> tuple[Tensor, Tensor | None]:
        """`MultiHeadAttention.forward`, for self-attention only, after checking the arguments.

        Shape: query (B, T, D), mask as below -> out (B, T, D), weights (B, H, T, S) if
        need_weights else None (S = T without a cache).

        The mask's role depends on the cache:
        - no cache: `mask` is a key-padding mask broadcastable to (B, 1, 1, T), or None; a
          (T, S) mask raises ValueError. The blocked `sliding_window_attention` applies band and
          causality in O(T·w) memory, never building (T, T) scores. need_weights (and a score
          bias) fall back to dense math with `band_mask`, so visualisation still works.
        - `KVCache` (incremental decoding, causal only): the T new queries sit at positions
          offset … offset+T-1 over S = offset+T keys. `mask` is any mask broadcastable to
          (B, H, T, S); it is combined with the (T, S) band (query p sees keys p-window … p)
          and attention is dense, T being small. Keys older than offset - window are visible to
          no new query and are skipped (unless need_weights), so a step costs O(window), not
          O(S); the cache itself still holds every step.
        A query whose band holds no allowed key gets zeros, not NaN.
        """
        if key_value is not None or (cache is not None and cache.static):
            raise ValueError("window applies to self-attention only: pass no key_value/StaticKV")
        if cache is not None and not self.causal:
            raise ValueError("a KV cache needs causal windowed attention (causal=True)")
        return super().forward(query, None, mask, cache, positional, need_weights)

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
        dropout_p: float,
        offset: int,
        cached: bool,
        need_weights: bool,
        is_causal: bool = False,  # unused: the window's own `causal` decides
    ) -> tuple[Tensor, Tensor | None]:
        """Eq. 1 restricted to the band: blocked without a cache, dense over a `KVCache`.

        Shape: q (B, H, T, Dh), k and v (B, H, S, Dh) (S = T without a cache), mask as in
        `forward` -> out (B, H, T, Dh), weights (B, H, T, S) | None.
        """
        if cached:
            return self._windowed_cached(q, k, v, mask, bias, dropout_p, offset, need_weights)
        return self._windowed(q, k, v, mask, bias, dropout_p, need_weights)

    def _windowed(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
        dropout_p: float,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Whole-sequence windowed self-attention.

        Shape: q, k, v (B, H, T, Dh), mask (B|1, 1, 1, T) key padding or None
        -> out (B, H, T, Dh), weights (B, H, T, T) | None.
        """
        T = q.shape[-2]
        key_mask = _key_padding_mask(mask, T)  # (B|1, 1, 1, T) | None
        if bias is None and not need_weights:
            out = sliding_window_attention(q, k, v, self.window, self.causal, key_mask, dropout_p)
            return out, None
        # Weights to return (or a bias to add): dense (T, T), same result as the blocked path.
        band = band_mask(T, self.window, self.causal, device=q.device)  # (T, T)
        return _attention_guarded(
            q, k, v, combine(band, key_mask), bias, dropout_p, self.impl, need_weights
        )

    def _windowed_cached(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
        dropout_p: float,
        offset: int,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Causal windowed self-attention of T new queries over the cache.

        Shape: q (B, H, T, Dh) at positions offset … offset+T-1, k, v (B, H, S, Dh) with
        S = offset + T, mask broadcastable to (B, H, T, S) or None
        -> out (B, H, T, Dh), weights (B, H, T, S) | None.
        """
        T, S = q.shape[-2], k.shape[-2]
        window = self.window
        # The earliest new query (offset) sees keys from offset - window on: older ones matter to
        # none of them. Keep them only when the weights must cover all S keys.
        start = 0 if need_weights else max(0, offset - window)
        if start:
            k, v = k[:, :, start:], v[:, :, start:]  # (B, H, S - start, Dh)
            if mask is not None and mask.shape[-1] != 1:
                mask = mask[..., start:]
            if bias is not None and bias.shape[-1] != 1:
                bias = bias[..., start:]
        if T == 1 and not need_weights:
            band = None  # one query, and every kept key lies in its band: SDPA's no-mask path
        else:
            q_pos = torch.arange(offset, offset + T, device=q.device)[:, None]  # (T, 1)
            k_pos = torch.arange(start, S, device=q.device)[None, :]  # (1, S - start)
            rel = q_pos - k_pos  # (T, S - start): query position - key position
            band = (rel >= 0) & (rel <= window)
        return _attention_guarded(
            q, k, v, combine(band, mask), bias, dropout_p, self.impl, need_weights
        )


__all__ = ["SlidingWindowAttention", "band_mask", "sliding_window_attention"]
