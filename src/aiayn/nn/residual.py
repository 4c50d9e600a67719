"""The residual connection around every sub-layer, with its dropout and LayerNorm (§3.1, §5.4).

post-LN (the paper):  x ← LayerNorm(x + Dropout(Sublayer(x)))
pre-LN (option):      x ← x + Dropout(Sublayer(LayerNorm(x)))

Pre-LN keeps an identity path from input to output, which trains deep stacks without warm-up
(Xiong et al. 2020); its stack then needs one final LayerNorm, which the Encoder/Decoder add.
"""

from __future__ import annotations

from torch import Tensor, nn

from aiayn.nn.dropout import Dropout
from aiayn.nn.norms import build_norm
from aiayn.nn.trace import record


class Residual(nn.Module):
    """Wraps one sub-layer call: `y = sublayer(res.before(x)); x = res.after(x, y)`."""

    def __init__(
        self, d_model: int, dropout: float, norm_first: bool, eps: float = 1e-5, norm: str = "layer"
    ):
        super().__init__()
        self.norm = build_norm(norm, d_model, eps)  # LayerNorm unless the config says otherwise
        self.dropout = Dropout(dropout)
        self.norm_first = norm_first

    def before(self, x: Tensor, real: Tensor | None = None) -> Tensor:
        """The sub-layer's input. Shape: (B, T, D), real (B, T) bool | None -> (B, T, D)."""
        return self.norm(x, real) if self.norm_first else x

    def after(self, x: Tensor, y: Tensor, real: Tensor | None = None) -> Tensor:
        """Add the sub-layer output `y` to the residual stream `x`. Shape: (B, T, D) each;
        `real` (B, T) marks non-padding tokens (only a BatchNorm reads it)."""
        x = x + self.dropout(y)
        if not self.norm_first:
            x = self.norm(x, real)
        record("residual x + Dropout(y)" + ("" if self.norm_first else ", LayerNorm"), x)
        return x
