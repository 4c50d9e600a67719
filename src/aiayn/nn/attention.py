"""Scaled dot-product attention and multi-head attention (§3.2).

    Attention(Q, K, V) = softmax(QKᵀ / √d_k) V                                  (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, …, head_h) W_O,
        head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)

Two implementations of eq. 1 that tests hold equal: "math", the reference, written as the
equation and able to return the attention weights; and "sdpa", PyTorch's fused kernel
(flash / memory-efficient / C++ math, whichever fits the device), which never materialises
the weights. "auto" picks per call the one that is faster where it runs (`pick_impl`).
Masks follow the package convention (`aiayn.nn.masks`): bool, True = may attend.

`MultiHeadAttention(window=w)` makes self-attention local (not in the paper): query i sees only
keys j with |i - j| <= w, or 0 <= i - j <= w when `causal` (`aiayn.nn.sliding_window`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.nn.dropout import dropout
from aiayn.nn.masks import combine, to_additive
from aiayn.nn.sliding_window import band_mask, sliding_window_attention
from aiayn.nn.trace import record

if TYPE_CHECKING:
    from aiayn.nn.kv_cache import KVCache, StaticKV
    from aiayn.nn.positional import PositionalEncoding

Impl = Literal["auto", "sdpa", "math"]


def pick_impl(q: Tensor) -> Literal["sdpa", "math"]:
    """The faster path for `q`'s device, dtype and mode (measured: docs/benchmarks.md).

    On CPU, SDPA's bf16/fp16 backward for short sequences is slow (its flash kernel's backward
    dominated a Multi30k step), while the math path's half-precision matmuls run on AMX: the
    math path trains 1.7× faster there. Decoding one query per step on CPU, the math path's two
    small matmuls also beat SDPA's kernel set-up (1.5–1.8× per call). Everywhere else — GPUs
    (flash), fp32 training, whole-sequence inference — SDPA is as fast or faster and never
    materialises the (T, S) weights.
    """
    if q.device.type != "cpu":
        return "sdpa"
    if q.requires_grad and q.dtype in (torch.bfloat16, torch.float16):
        return "math"
    if q.shape[-2] == 1 and not q.requires_grad:
        return "math"  # one query per step when decoding: two small matmuls beat SDPA's set-up
    return "sdpa"


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    dropout_p: float = 0.0,
    impl: Impl = "auto",
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(QKᵀ/√d_k + bias, masked) V.

    Shape: q (B, H, T, Dh), k and v (B, H, S, Dh), mask bool broadcastable to (B, H, T, S),
    bias float broadcastable to (B, H, T, S) -> out (B, H, T, Dh), weights (B, H, T, S) or None.
    Every query must be allowed at least one key (a fully masked row has no softmax).
    `dropout_p` applies to the weights; pass 0.0 in eval mode. `need_weights` forces "math".
    """
    if impl == "auto":
        impl = pick_impl(q)
    if impl == "sdpa" and not need_weights:
        attn_mask = mask
        if bias is not None:  # SDPA takes one mask: fold the bool mask into the float bias
            attn_mask = bias if mask is None else bias + to_additive(mask, bias.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        record("softmax(QKᵀ/√d_k)V (fused SDPA)", out)
        return out, None

    # Why √d_k: for unit-variance q, k the dot product has variance d_k; unscaled, large d_k
    # pushes softmax into saturation where its gradients vanish (§3.2.1, footnote 4).
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    record("scores QKᵀ/√d_k", scores)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exactly 0 weight after softmax
    weights = scores.softmax(dim=-1)  # (B, H, T, S)
    record("weights softmax(scores)", weights)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    out = weights @ v  # (B, H, T, Dh)
    record("weights · V", out)
    return out, (weights if need_weights else None)


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


class MultiHeadAttention(nn.Module):
    """Multi-head attention for self- and cross-attention (§3.2.2).

    W_Q, W_K, W_V, W_O are separate `nn.Linear(d_model, d_model)` modules: the h per-head
    projections of the paper are the column blocks of each, so head i uses columns
    i·Dh … (i+1)·Dh. The state dict therefore reads like the paper (w_q, w_k, w_v, w_o).

    window: local self-attention (None = full attention, the paper). Query i attends only to
    keys j with |i - j| <= window, or 0 <= i - j <= window when `causal`. Self-attention only
    (`key_value` None, no `StaticKV`). Full attention ignores `causal` and takes causality from
    the mask alone. The window adds no parameters: the state dict is the same either way.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        impl: Impl = "auto",
        window: int | None = None,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
            raise ValueError(f"window must be an int or None, got {window!r}")
        if window is not None and window < 0:
            raise ValueError(f"window must be >= 0 (0: each query sees only itself), got {window}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.dropout, self.impl = dropout, impl
        self.window, self.causal = window, causal
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, T, Dh) -> (B, T, D): Concat(head_1, …, head_h)."""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).reshape(B, T, self.d_model)

    def forward(
        self,
        query: Tensor,
        key_value: Tensor | None = None,
        mask: Tensor | None = None,
        cache: KVCache | StaticKV | None = None,
        positional: PositionalEncoding | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from `query` to `key_value` (itself when None: self-attention).

        Shape: query (B, T, D), key_value (B, S, D), mask bool broadcastable to (B, H, T, S)
        -> out (B, T, D), weights (B, H, T, S) if need_weights else None.

        With `window` (self-attention only), the mask's role depends on the cache:
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

        cache: a `KVCache` for decoder self-attention (new K/V are appended; S counts the past
        steps too) or a `StaticKV` for cross-attention (K/V of the encoder output computed on
        the first call, reused after; key_value may then be None).
        positional: a relative scheme (RoPE, ALiBi, …) that acts inside attention; absolute
        encodings are added to the embeddings instead and pass None here.
        """
        if self.window is not None and (
            key_value is not None or (cache is not None and cache.static)
        ):
            raise ValueError("window applies to self-attention only: pass no key_value/StaticKV")
        if self.window is not None and cache is not None and not self.causal:
            raise ValueError("a KV cache needs causal windowed attention (causal=True)")
        q = self.split_heads(self.w_q(query))  # (B, H, T, Dh)
        record("Q = x·W_Q, split into heads", q)
        offset = cache.length if cache is not None and not cache.static else 0
        if cache is not None and cache.static and cache.filled:
            k, v = cache.k, cache.v  # (B, H, S, Dh), computed once per source sentence
        else:
            source = query if key_value is None else key_value
            k = self.split_heads(self.w_k(source))  # (B, H, S_new, Dh)
            v = self.split_heads(self.w_v(source))  # (B, H, S_new, Dh)
            record("K = x·W_K, split into heads", k)
            record("V = x·W_V, split into heads", v)
            if positional is not None:
                q, k = positional.rotate(q, k, offset)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, H, S, Dh) with S = past + S_new
        bias = positional.score_bias(q, k.shape[-2], offset) if positional is not None else None
        dropout_p = self.dropout if self.training else 0.0
        if self.window is None:
            out, weights = scaled_dot_product_attention(
                q, k, v, mask, bias, dropout_p, self.impl, need_weights
            )
        elif cache is None:
            out, weights = self._windowed(q, k, v, mask, bias, dropout_p, need_weights)
        else:
            out, weights = self._windowed_cached(
                q, k, v, mask, bias, dropout_p, offset, need_weights
            )
        out = self.merge_heads(out)  # (B, T, D)
        record("merge heads (concat)", out)
        out = self.w_o(out)  # (B, T, D)
        record("output ·W_O", out)
        return out, weights

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
