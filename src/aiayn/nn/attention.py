"""Scaled dot-product attention and multi-head attention (§3.2).

    Attention(Q, K, V) = softmax(QKᵀ / √d_k) V                                  (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, …, head_h) W_O,
        head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)

Two implementations of eq. 1 that tests hold equal: "math", the reference, written as the
equation and able to return the attention weights; and "sdpa", PyTorch's fused kernel
(flash / memory-efficient / C++ math, whichever fits the device), which never materialises
the weights. "auto" picks per call the one that is faster where it runs (`pick_impl`).
Masks follow the package convention (`aiayn.nn.masks`): bool, True = may attend.

`MultiHeadAttention` projects, splits into heads, calls `attend` (eq. 1 on every head at
once), merges the heads and projects back. A variant overrides `attend` alone: local
self-attention, which is not in the paper, is `SlidingWindowAttention` in
`aiayn.nn.sliding_window`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.nn.dropout import dropout
from aiayn.nn.masks import causal_mask, combine, to_additive
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
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(QKᵀ/√d_k + bias, masked) V.

    Shape: q (B, H, T, Dh), k and v (B, H, S, Dh), mask bool broadcastable to (B, H, T, S),
    bias float broadcastable to (B, H, T, S) -> out (B, H, T, Dh), weights (B, H, T, S) or None.
    Every query must be allowed at least one key (a fully masked row has no softmax).
    `dropout_p` applies to the weights; pass 0.0 in eval mode. `need_weights` forces "math".
    `is_causal`: also hide later keys, for T == S only (a whole sequence, no cache); with no
    other mask or bias SDPA then runs its causal kernels (flash on GPUs) without a mask tensor.
    """
    if impl == "auto":
        impl = pick_impl(q)
    if is_causal:
        T, S = q.shape[-2], k.shape[-2]
        if T != S:
            raise ValueError(f"is_causal needs as many queries as keys, got {T} and {S}")
        if impl == "math" or mask is not None or bias is not None or need_weights:
            mask, is_causal = combine(mask, causal_mask(T, S, device=q.device)), False
    if impl == "sdpa" and not need_weights:
        if is_causal:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            record("softmax(QKᵀ/√d_k)V (fused SDPA, causal)", out)
            return out, None
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


class MultiHeadAttention(nn.Module):
    """Multi-head attention for self- and cross-attention (§3.2.2).

    W_Q, W_K, W_V, W_O are separate `nn.Linear(d_model, d_model)` modules: the h per-head
    projections of the paper are the column blocks of each, so head i uses columns
    i·Dh … (i+1)·Dh. The state dict therefore reads like the paper (w_q, w_k, w_v, w_o).

    `forward` owns the projections, the KV cache and the head split/merge; `attend` is eq. 1
    on the heads, the one method a variant overrides (`SlidingWindowAttention`).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        impl: Impl = "auto",
        key_dim: int | None = None,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        # d_k: queries and keys may be narrower (or wider) than values (Table 3 row B)
        self.key_dim = key_dim or self.head_dim
        self.dropout, self.impl = dropout, impl
        self.w_q = nn.Linear(d_model, n_heads * self.key_dim, bias=bias)
        self.w_k = nn.Linear(d_model, n_heads * self.key_dim, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, H·Dh) -> (B, H, T, Dh); Dh is d_k for queries and keys, d_v for values."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, -1).transpose(1, 2)

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
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from `query` to `key_value` (itself when None: self-attention).

        Shape: query (B, T, D), key_value (B, S, D), mask bool broadcastable to (B, H, T, S)
        -> out (B, T, D), weights (B, H, T, S) if need_weights else None.

        cache: a `KVCache` for decoder self-attention (new K/V are appended; S counts the past
        steps too) or a `StaticKV` for cross-attention (K/V of the encoder output computed on
        the first call, reused after; key_value may then be None).
        positional: a relative scheme (RoPE, ALiBi, …) that acts inside attention; absolute
        encodings are added to the embeddings instead and pass None here.
        is_causal: self-attention over a whole sequence (no past in the cache) where each query
        sees only itself and earlier keys; cheaper than the same (T, T) mask (see
        `scaled_dot_product_attention`).
        """
        q = self.split_heads(self.w_q(query))  # (B, H, T, Dh)
        record("Q = x·W_Q, split into heads", q)
        cached = cache is not None and not cache.static  # K/V hold past decoding steps too
        offset = cache.length if cached else 0  # position of the first new query
        group = 1  # batch rows sharing one row of k, v (beams of one source: `StaticKV`)
        if cache is not None and cache.static and cache.filled:
            k, v = cache.k, cache.v  # (B / group, H, S, Dh), computed once per source sentence
            group = cache.group
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
        mixes = positional is not None and positional.mixes_values  # needs the weights
        if group > 1 and (need_weights or mixes or bias is not None):  # rare: a row each
            k, v, group = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0), 1
        if group > 1:  # the group's queries attend together to their one source's K/V
            B, H, T, Dh = q.shape
            q = q.view(B // group, group, H, T, Dh).transpose(1, 2)  # (B/G, H, G, T, Dh)
            q = q.reshape(B // group, H, group * T, Dh)  # (B/G, H, G·T, Dh)
            if mask is not None and mask.shape[0] > 1:
                mask = mask[::group]  # (B/G, …): the rows of a group share their source
        out, weights = self.attend(
            q, k, v, mask, bias, dropout_p, offset, cached, need_weights or mixes, is_causal
        )
        if group > 1:
            Dv = out.shape[-1]
            out = out.view(B // group, H, group, T, Dv).transpose(1, 2)  # (B/G, G, H, T, Dv)
            out = out.reshape(B, H, T, Dv)
        if mixes:
            out = out + positional.value_term(weights, offset)  # (B, H, T, Dh)
            weights = weights if need_weights else None
        out = self.merge_heads(out)  # (B, T, D)
        record("merge heads (concat)", out)
        out = self.w_o(out)  # (B, T, D)
        record("output ·W_O", out)
        return out, weights

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
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Eq. 1 on every head at once: the step a variant of attention replaces.

        Shape: q (B, H, T, Dh) at positions offset … offset+T-1, k and v (B, H, S, Dh), mask
        bool broadcastable to (B, H, T, S), bias float broadcastable to (B, H, T, S)
        -> out (B, H, T, Dh), weights (B, H, T, S) | None.
        offset: the number of past steps in a `KVCache` (0 without one, and for `StaticKV`);
        cached: k, v come from a `KVCache`, so S = offset + T. Full attention needs neither:
        the mask says everything.
        """
        return scaled_dot_product_attention(
            q, k, v, mask, bias, dropout_p, self.impl, need_weights, is_causal
        )
