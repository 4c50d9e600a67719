"""Position-wise feed-forward network (§3.3): FFN(x) = max(0, x·W1 + b1)·W2 + b2."""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.nn.dropout import Dropout
from aiayn.nn.trace import record

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": partial(F.gelu, approximate="tanh"),
}


def activation_function(name: str):
    """The activation called `name` in `LayerConfig.activation` (relu, gelu, gelu_tanh)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]


class PositionwiseFeedForward(nn.Module):
    """Two linear maps with an activation between, applied to each position independently.

    ReLU is the paper's; GELU is the option BERT made standard, and "gelu_tanh" its tanh
    approximation that GPT-2 was trained with (so GPT-2 weights need it). `dropout` acts on the
    inner activations (tensor2tensor's relu_dropout, fairseq's activation_dropout): not in the
    paper, a regulariser of the widest layer for small corpora.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "relu",
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}"
            )
        self.w_1 = nn.Linear(d_model, d_ff, bias=bias)
        self.w_2 = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = _ACTIVATIONS[activation]
        # The shape trace's name for the inner step: the paper's max(0, ·) only for ReLU.
        self._inner = "max(0, x·W1 + b1)" if activation == "relu" else f"{activation}(x·W1 + b1)"
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Shape: x (B, T, D) -> (B, T, D)."""
        h = self.activation(self.w_1(x))  # (B, T, d_ff)
        record("FFN inner " + self._inner, h)
        out = self.w_2(self.dropout(h))  # (B, T, D)
        record("FFN output ·W2 + b2", out)
        return out
