"""Long sequences: time and peak memory of one self-attention layer against sequence length.

One self-attention layer (d_model 256, 8 heads, batch 1, fp32), forward + backward,
bidirectional like an encoder layer, for three paths:
  math     the reference path: materialises the (T, T) scores and weights — O(T²) memory
  sdpa     PyTorch's fused kernel — no (T, T) weights kept for backward on flash kernels
  window   `SlidingWindowAttention` (`window=` keys either side) — O(T·w) memory and time
"""

from __future__ import annotations

import torch

from aiayn.nn.attention import MultiHeadAttention
from aiayn.nn.sliding_window import SlidingWindowAttention
from benchmarks.measure import PeakMemory, median_seconds


def attention_layer_cost(
    impl: str,
    seq_len: int,
    device: str,
    d_model: int = 256,
    heads: int = 8,
    window: int = 128,
    warmup: int = 1,
    reps: int = 3,
) -> dict:
    """Milliseconds and peak MiB of forward + backward through one attention layer."""
    torch.manual_seed(0)
    if impl == "window":
        layer = SlidingWindowAttention(d_model, heads, impl="sdpa", window=window)
    else:
        layer = MultiHeadAttention(d_model, heads, impl=impl)
    layer.to(device)
    x = torch.randn(1, seq_len, d_model, device=device, requires_grad=True)  # (1, T, D)

    def step() -> None:
        out, _ = layer(x)  # (1, T, D)
        out.sum().backward()

    with PeakMemory(device) as mem:
        seconds = median_seconds(step, warmup, reps, device)
    return {"ms": round(seconds * 1e3, 2), "peak_mem_mib": mem.mib}
