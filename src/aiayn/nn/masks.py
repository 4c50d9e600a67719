"""Attention masks. The one convention of the whole package:

    **A mask is a boolean tensor and True means "this query may attend to this key".**

That is the polarity of `torch.nn.functional.scaled_dot_product_attention`. Masks broadcast
against attention scores of shape (B, H, T, S): a padding mask is (B, 1, 1, S), a causal mask is
(T, S), their combination is (B, 1, T, S). Every mask in aiayn is built here. torch's own modules
(`nn.MultiheadAttention`, `nn.Transformer`) use the opposite polarity for their boolean masks
(True = ignore); `to_torch_polarity` converts at that boundary, once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """Keys that are real tokens, not padding.

    Shape: ids (B, S) -> (B, 1, 1, S) bool, True where ids != pad_id.
    """
    return (ids != pad_id)[:, None, None, :]


def lengths_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Padding mask from sequence lengths (real tokens first, padding after).

    Shape: lengths (B,) -> (B, 1, 1, S) bool with S = max_len or max(lengths).
    """
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)  # (S,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | None = None) -> Tensor:
    """Query i may attend to keys 0..i, with the last query aligned to the last key.

    Bottom-right alignment makes the same function serve training (T == S) and cached
    decoding, where T new queries attend to S = past + T keys: query i sits at absolute position
    S - T + i. (`is_causal=True` in SDPA is top-left aligned, wrong when T != S.)

    Shape: -> (T, S) bool.
    """
    k_len = q_len if k_len is None else k_len
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)


def combine(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of broadcastable masks (None means "no restriction").

    Shape: e.g. (B, 1, 1, S) & (T, S) -> (B, 1, T, S).
    """
    out: Tensor | None = None
    for mask in masks:
        if mask is not None:
            out = mask if out is None else out & mask
    return out


def decoder_self_mask(tgt_ids: Tensor, pad_id: int) -> Tensor:
    """Masked self-attention of the decoder: causal and no padded keys (§3.2.3).

    Shape: tgt_ids (B, T) -> (B, 1, T, T) bool.
    """
    T = tgt_ids.shape[1]
    return combine(padding_mask(tgt_ids, pad_id), causal_mask(T, T, device=tgt_ids.device))


def to_additive(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Boolean mask -> additive bias: 0 where allowed, -inf where masked.

    `-inf` (not -1e9, which overflows fp16) makes masked weights exactly 0 after softmax.
    """
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, -torch.inf)


def to_torch_polarity(mask: Tensor) -> Tensor:
    """aiayn's True = may attend  ->  torch.nn modules' True = must not attend."""
    return ~mask
