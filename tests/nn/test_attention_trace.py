"""The shape trace of attention (`aiayn model-info`'s listing, `aiayn.nn.trace`): each step of
§3.2 in the paper's terms, with its shape, in order, and which kernel ran.

The step names are the trace's user-facing vocabulary (`tests/models/test_info.py` looks them up
in a whole model's trace); here one attention call is traced on its own, path by path."""

import pytest
import torch
from torch import nn

from aiayn.nn.attention import MultiHeadAttention, scaled_dot_product_attention
from aiayn.nn.trace import shape_trace

B, T, S, D, H = 2, 5, 7, 16, 2
DH = D // H

PROJECT = [
    ("Q = x·W_Q, split into heads", (B, H, T, DH)),
    ("K = x·W_K, split into heads", (B, H, S, DH)),
    ("V = x·W_V, split into heads", (B, H, S, DH)),
]
MERGE = [("merge heads (concat)", (B, T, D)), ("output ·W_O", (B, T, D))]
MATH = [
    ("scores QKᵀ/√d_k", (B, H, T, S)),
    ("weights softmax(scores)", (B, H, T, S)),
    ("weights · V", (B, H, T, DH)),
]
FUSED = [("softmax(QKᵀ/√d_k)V (fused SDPA)", (B, H, T, DH))]


def traced(module, *args, **kwargs):
    with shape_trace(module) as steps:
        module(*args, **kwargs)
    assert all(s.dtype == "float32" for s in steps)
    return [(s.name, s.shape) for s in steps]


def test_math_path_traces_every_step_of_multi_head_attention():
    mha = MultiHeadAttention(D, H, impl="math").eval()
    steps = traced(mha, torch.randn(B, T, D), torch.randn(B, S, D))
    assert steps == PROJECT + MATH + MERGE


@pytest.mark.parametrize("kwargs", [{}, {"impl": "auto"}, {"impl": "sdpa"}])
def test_fused_path_never_materialises_the_weights(kwargs):
    """On a CPU in fp32 over whole sequences "auto" (the default) takes the fused kernel: no
    (B, H, T, S) tensor is ever made."""
    mha = MultiHeadAttention(D, H, **kwargs).eval()
    steps = traced(mha, torch.randn(B, T, D), torch.randn(B, S, D))
    assert steps == PROJECT + FUSED + MERGE
    assert (B, H, T, S) not in [shape for _, shape in steps]


def test_need_weights_takes_the_math_path_whatever_the_impl():
    mha = MultiHeadAttention(D, H, impl="sdpa").eval()
    steps = traced(mha, torch.randn(B, T, D), torch.randn(B, S, D), need_weights=True)
    assert steps == PROJECT + MATH + MERGE


def test_is_causal_runs_the_fused_causal_kernel_without_a_mask():
    mha = MultiHeadAttention(D, H).eval()
    steps = traced(mha, torch.randn(B, T, D), is_causal=True)
    square = [(name, (B, H, T, DH)) for name, _ in PROJECT]
    causal = [("softmax(QKᵀ/√d_k)V (fused SDPA, causal)", (B, H, T, DH))]
    assert steps == square + causal + MERGE


def test_the_function_defaults_to_auto():
    q, k, v = torch.randn(B, H, T, DH), torch.randn(B, H, S, DH), torch.randn(B, H, S, DH)
    with shape_trace(nn.Identity()) as steps:
        scaled_dot_product_attention(q, k, v)  # fp32, whole sequence, CPU: the fused kernel
    assert [(s.name, s.shape) for s in steps] == FUSED
