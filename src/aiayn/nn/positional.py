"""Positional encodings (§3.5): how a permutation-invariant attention stack learns order.

A scheme can act in up to three places, and the layers call all three without knowing which
scheme they hold, so new ones (relative à la Shaw, T5 buckets, ALiBi) plug in without touching
the layers:

- `embed(x, offset)`        absolute encodings are added to the token embeddings (paper, learned);
- `rotate(q, k, offset)`    RoPE rotates queries and keys inside self-attention;
- `score_bias(q, S, off)`   additive biases on the attention scores (ALiBi, T5, Shaw's keys term);
- `value_term(weights)`     a term mixed into the output by the weights (Shaw's values term).

`offset` is the absolute position of the first element of the current chunk: 0 in training, the
number of steps already decoded during incremental decoding. `embed` also takes one offset per
row, a (B,) tensor, for left-padded prompts (row b's first real token is at position 0, so its
offset is minus its padding); positions below 0 (the padding itself) read position 0's
encoding, and the attention mask hides them. Relative schemes need no such shift: q·k then
depends only on the difference of positions, which padding on the left does not change.
"""

from __future__ import annotations

import math

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

    def value_term(self, weights: Tensor, offset: int = 0) -> Tensor | None:
        """A term added to the attention output from the weights (Shaw's values).

        Shape: weights (B, H, T, S) -> (B, H, T, Dh) | None.
        """
        return None

    @property
    def mixes_values(self) -> bool:
        """Whether attention must hand this scheme its weights (`value_term`)."""
        return type(self).value_term is not PositionalEncoding.value_term

    @property
    def acts_in_attention(self) -> bool:
        """Whether self-attention layers must be handed this scheme."""
        return (
            type(self).rotate is not PositionalEncoding.rotate
            or type(self).score_bias is not PositionalEncoding.score_bias
            or self.mixes_values
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


def relative_distances(q_len: int, k_len: int, offset: int, device: torch.device) -> Tensor:
    """j − i for queries at positions offset … offset+q_len−1 and keys at 0 … k_len−1.

    Shape: -> (q_len, k_len) long; negative where the key precedes the query.
    """
    queries = torch.arange(offset, offset + q_len, device=device)
    keys = torch.arange(k_len, device=device)
    return keys[None, :] - queries[:, None]


def alibi_slopes(n_heads: int) -> Tensor:
    """ALiBi's per-head slopes (Press et al. 2022): for h a power of two, the geometric
    sequence 2^(−8/h), 2^(−16/h), …, 2^(−8); otherwise those of the nearest smaller power of
    two, then every other slope of the next power of two, as the paper's code does.

    Shape: -> (n_heads,) float32.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    below = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two(below)
    if below < n_heads:
        slopes += power_of_two(2 * below)[0::2][: n_heads - below]
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBiPositionalEncoding(PositionalEncoding):
    """ALiBi (Press et al. 2022): no position vectors at all; each head's scores get a penalty
    proportional to the distance, −m_h·|j − i|, with a fixed slope m_h per head (steep heads
    look near, gentle ones far). Trained short, it extrapolates to longer inputs."""

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)  # (H,)

    def score_bias(self, q: Tensor, k_len: int, offset: int = 0) -> Tensor:
        distance = relative_distances(q.shape[-2], k_len, offset, q.device).abs()  # (T, S)
        return (-self.slopes[:, None, None] * distance).to(q.dtype)  # (H, T, S)


def t5_bucket(distance: Tensor, n_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """T5's bucket of each relative distance j − i (Raffel et al. 2020), bidirectional: half
    the buckets for keys before the query, half for keys after; in each half, distances
    below a quarter of the buckets get one bucket each, the rest share logarithmically wider
    buckets up to `max_distance`, beyond which all share the last.

    Shape: distance (…) long -> (…) long in [0, n_buckets).
    """
    half = n_buckets // 2
    bucket = (distance > 0).long() * half  # keys after the query: the upper half
    n = distance.abs()
    exact = half // 2
    # log-spaced from `exact` to `max_distance` over the remaining half − exact buckets
    far = n.clamp(min=1).float() / exact
    log_bucket = exact + (far.log() / math.log(max_distance / exact) * (half - exact)).long()
    log_bucket = log_bucket.clamp(max=half - 1)
    return bucket + torch.where(n < exact, n, log_bucket)


class T5RelativeBias(PositionalEncoding):
    """T5's relative attention bias: a learned scalar per (bucket of j − i, head) added to
    the scores; one table for the whole stack, shared by its layers as in T5."""

    def __init__(self, n_heads: int, n_buckets: int = 32, max_distance: int = 128) -> None:
        super().__init__()
        self.n_buckets, self.max_distance = n_buckets, max_distance
        self.bias = nn.Embedding(n_buckets, n_heads)  # (buckets, H)
        nn.init.zeros_(self.bias.weight)  # start position-blind; training finds the shape

    def score_bias(self, q: Tensor, k_len: int, offset: int = 0) -> Tensor:
        distance = relative_distances(q.shape[-2], k_len, offset, q.device)  # (T, S)
        buckets = t5_bucket(distance, self.n_buckets, self.max_distance)  # (T, S)
        return self.bias(buckets).permute(2, 0, 1).to(q.dtype)  # (H, T, S)


class ShawRelativePositions(PositionalEncoding):
    """Shaw et al. (2018): learned vectors for the clipped distance clip(j − i, ±k_max), one
    table for keys and one for values, shared by the heads.

        e_ij = (q_i·k_j + q_i·a^K_ij) / √d_k        z_i = Σ_j α_ij (v_j + a^V_ij)

    The keys term is a score bias that depends on the query; the values term needs the
    attention weights, so attention takes the reference (math) path for this scheme.
    """

    def __init__(self, head_dim: int, k_max: int = 16, value_dim: int | None = None) -> None:
        """head_dim: d_k, the width of each head's queries and keys; value_dim: d_v (default
        d_k), the width of its values."""
        super().__init__()
        value_dim = value_dim or head_dim
        self.k_max, self.head_dim = k_max, head_dim
        self.keys = nn.Parameter(torch.empty(2 * k_max + 1, head_dim))  # (2K+1, Dk)
        self.values = nn.Parameter(torch.empty(2 * k_max + 1, value_dim))  # (2K+1, Dv)
        nn.init.normal_(self.keys, std=head_dim**-0.5)
        nn.init.normal_(self.values, std=value_dim**-0.5)

    def _index(self, q_len: int, k_len: int, offset: int, device: torch.device) -> Tensor:
        distance = relative_distances(q_len, k_len, offset, device)
        return distance.clamp(-self.k_max, self.k_max) + self.k_max  # (T, S) in [0, 2K]

    def score_bias(self, q: Tensor, k_len: int, offset: int = 0) -> Tensor:
        B, H, T, _ = q.shape
        per_distance = q @ self.keys.to(q.dtype).T  # (B, H, T, 2K+1): q_i · a^K for each clip
        index = self._index(T, k_len, offset, q.device).expand(B, H, T, k_len)
        return per_distance.gather(-1, index) / math.sqrt(self.head_dim)  # (B, H, T, S)

    def value_term(self, weights: Tensor, offset: int = 0) -> Tensor:
        """Σ_j α_ij a^V_ij, added to the attention output.

        Shape: weights (B, H, T, S) -> (B, H, T, Dh).
        """
        T, S = weights.shape[-2:]
        index = self._index(T, S, offset, weights.device)  # (T, S)
        # sum the weights falling on each clipped distance, then mix the 2K+1 vectors
        per_distance = weights.new_zeros(*weights.shape[:-1], 2 * self.k_max + 1)
        per_distance.scatter_add_(-1, index.expand_as(weights), weights)  # (B, H, T, 2K+1)
        return per_distance @ self.values.to(weights.dtype)  # (B, H, T, Dh)


def build_positional(
    kind: str, d_model: int, n_heads: int, max_len: int, key_dim: int | None = None
) -> PositionalEncoding:
    """The scheme named in `ModelConfig.positional`; `key_dim` is d_k when it is not
    d_model / n_heads (`LayerConfig.d_k`)."""
    head_dim = d_model // n_heads
    key_dim = key_dim or head_dim
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEncoding(d_model, max_len)
    if kind == "rope":
        return RotaryPositionalEncoding(key_dim)  # rotates queries and keys
    if kind == "alibi":
        return ALiBiPositionalEncoding(n_heads)
    if kind == "t5":
        return T5RelativeBias(n_heads)
    if kind == "shaw":
        return ShawRelativePositions(key_dim, value_dim=head_dim)
    if kind == "none":  # NoPE: order only through the causal mask, if any
        return PositionalEncoding()
    raise ValueError(f"unknown positional encoding {kind!r}")


__all__ = [
    "ALiBiPositionalEncoding",
    "LearnedPositionalEncoding",
    "PositionalEncoding",
    "RotaryPositionalEncoding",
    "ShawRelativePositions",
    "SinusoidalPositionalEncoding",
    "T5RelativeBias",
    "alibi_slopes",
    "build_positional",
    "relative_distances",
    "sinusoid_table",
    "t5_bucket",
]
