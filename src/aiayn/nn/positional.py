"""Positional encodings (§3.5): how a permutation-invariant attention stack learns order.

A scheme can act in up to three places, and the layers call all three without knowing which
scheme they hold, so new ones (relative à la Shaw, T5 buckets, ALiBi) plug in without touching
the layers:

- `embed(x, offset)`        absolute encodings are added to the token embeddings (paper, learned);
- `rotate(q, k, offset)`    RoPE rotates queries and keys inside self-attention;
- `score_bias(q, S, off)`   additive biases on the attention scores (ALiBi, T5, Shaw's keys term).

`offset` is the absolute position of the first element of the current chunk: 0 in training, the
number of steps already decoded during incremental decoding. `embed` also takes one offset per
row, a (B,) tensor, for left-padded prompts (row b's first real token is at position 0, so its
offset is minus its padding); positions below 0 (the padding itself) read position 0's
encoding, and the attention mask hides them. Relative schemes need no such shift: q·k then
depends only on the difference of positions, which padding on the left does not change.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aiayn.nn.trace import record


class PositionalEncoding(nn.Module):
    """Base class: by default a scheme does nothing at any of the three places."""

    def embed(self, x: Tensor, offset: int | Tensor = 0) -> Tensor:
        """Shape: x (B, T, D), offset int or (B,) long -> (B, T, D)."""
        return x

    def rotate(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        """Shape: q (B, H, T, Dh), k (B, H, T, Dh), both starting at `offset` -> same."""
        return q, k

    def score_bias(self, q: Tensor, k_len: int, offset: int = 0) -> Tensor | None:
        """Shape: q (B, H, T, Dh) from position `offset`, keys 0..k_len-1 -> (…, T, S) | None."""
        return None

    @property
    def acts_in_attention(self) -> bool:
        """Whether self-attention layers must be handed this scheme."""
        return type(self).rotate is not PositionalEncoding.rotate or (
            type(self).score_bias is not PositionalEncoding.score_bias
        )


def sinusoid_table(length: int, d_model: int, offset: int = 0) -> Tensor:
    """The paper's encoding, exactly (§3.5):

        PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
        PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

    Shape: -> (length, d_model) float32, rows for positions offset .. offset + length - 1.
    """
    pos = torch.arange(offset, offset + length, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    angle = pos / 10000.0 ** (two_i / d_model)  # (T, ceil(D/2))
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.float()


def _row_positions(offset: Tensor, length: int) -> Tensor:
    """Positions offset_b … offset_b + length - 1 of each row, those below 0 (left padding)
    clamped to 0. Shape: offset (B,) long -> (B, length) long."""
    steps = torch.arange(length, device=offset.device)
    return (offset[:, None] + steps).clamp(min=0)


class SinusoidalPositionalEncoding(PositionalEncoding):
    """Fixed sinusoids added to the embeddings; extrapolates past any length seen in training.

    For any fixed k, PE(pos + k) is a linear function of PE(pos) (a rotation of each (sin, cos)
    pair), which the paper hoped would let attention pick up relative offsets.
    """

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        self.d_model = d_model
        # Not persistent: it is a function of d_model, not a learned weight.
        self.register_buffer("table", sinusoid_table(max_len, d_model), persistent=False)

    def embed(self, x: Tensor, offset: int | Tensor = 0) -> Tensor:
        T = x.shape[1]
        if isinstance(offset, Tensor):  # one offset per row: gather each row's positions
            positions = _row_positions(offset, T)  # (B, T)
            if int(positions.max()) >= self.table.shape[0]:
                table = sinusoid_table(int(positions.max()) + 1, self.d_model).to(x.device)
            else:
                table = self.table
            out = x + table[positions].to(x.dtype)  # (B, T, D)
            record("+ positional encoding (sinusoidal)", out)
            return out
        if offset + T <= self.table.shape[0]:
            pe = self.table[offset : offset + T]  # (T, D)
        else:  # longer than precomputed: compute on the fly rather than fail
            pe = sinusoid_table(T, self.d_model, offset).to(self.table.device)
        out = x + pe.to(x.dtype)
        record("+ positional encoding (sinusoidal)", out)
        return out


class LearnedPositionalEncoding(PositionalEncoding):
    """One learned vector per absolute position (§3.5: "nearly identical results")."""

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=d_model**-0.5)

    def embed(self, x: Tensor, offset: int | Tensor = 0) -> Tensor:
        T = x.shape[1]
        end = int(offset.max()) + T if isinstance(offset, Tensor) else offset + T
        if end > self.max_len:
            raise ValueError(
                f"sequence reaches position {end} but learned positions stop at "
                f"max_len={self.max_len}; shorten the input or use sinusoidal positions"
            )
        if isinstance(offset, Tensor):
            pe = self.weight[_row_positions(offset, T)]  # (B, T, D)
        else:
            pe = self.weight[offset : offset + T]  # (T, D)
        out = x + pe.to(x.dtype)
        record("+ positional encoding (learned)", out)
        return out


class RotaryPositionalEncoding(PositionalEncoding):
    """RoPE (Su et al. 2021): rotate each (q, k) feature pair by an angle proportional to the
    position, so q·k depends only on the positions' difference. Nothing is added to embeddings.
    Uses the "rotate half" pairing (feature j with j + Dh/2), as GPT-NeoX and LLaMA do.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (Dh/2,)

    def _rotate(self, x: Tensor, offset: int) -> Tensor:
        T = x.shape[-2]
        pos = torch.arange(offset, offset + T, device=x.device, dtype=torch.float32)
        angle = torch.outer(pos, self.inv_freq)  # (T, Dh/2)
        cos = torch.cat([angle.cos(), angle.cos()], dim=-1).to(x.dtype)  # (T, Dh)
        sin = torch.cat([angle.sin(), angle.sin()], dim=-1).to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin

    def rotate(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        return self._rotate(q, offset), self._rotate(k, offset)


def build_positional(kind: str, d_model: int, n_heads: int, max_len: int) -> PositionalEncoding:
    """The scheme named in `ModelConfig.positional`."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEncoding(d_model, max_len)
    if kind == "rope":
        return RotaryPositionalEncoding(d_model // n_heads)
    if kind == "none":
        return PositionalEncoding()
    raise ValueError(f"unknown positional encoding {kind!r}")


__all__ = [
    "LearnedPositionalEncoding",
    "PositionalEncoding",
    "RotaryPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "build_positional",
    "sinusoid_table",
]
