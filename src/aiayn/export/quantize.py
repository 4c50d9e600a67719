"""Dynamic int8 quantization of a model's linear layers for CPU inference.

    model = quantize_model(load_pretrained("runs/multi30k"), "int8")   # a quantized copy

Every `nn.Linear` (attention projections, feed-forward) and the output projection (tied to the
embeddings, so not an `nn.Linear`) become int8 matmuls: weights quantized once (per tensor,
PyTorch's dynamic default), activations quantized on the fly at each call (torch.ao "dynamic"
quantization, fbgemm/x86 kernels). Embeddings, LayerNorms, attention scores and softmax stay
fp32: a small share of decoding time and the most sensitive to rounding. CTranslate2's
`int8` quantizes the same matmuls (and its embeddings).

The model's outputs change (int8 rounding), so translations may differ from fp32's;
`benchmarks.real_sentences` reports the BLEU change beside the speed.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from aiayn.errors import ConfigError

#: What `quantize` accepts (None or "none": no quantization).
SCHEMES = ("int8",)


def check_quantize(scheme: str | None, device: str | torch.device = "cpu") -> str | None:
    """The scheme to apply (None for none), or a ConfigError naming --quantize."""
    if scheme in (None, "none"):
        return None
    if scheme not in SCHEMES:
        raise ConfigError(
            f"--quantize {scheme}: unknown scheme; choose one of {', '.join(SCHEMES)} (or none)"
        )
    if torch.device(device).type != "cpu":
        raise ConfigError(
            f"--quantize {scheme} runs on the CPU only (dynamic int8 kernels); drop it or use "
            f"--device cpu, not {device}"
        )
    return scheme


def quantize_model(model: nn.Module, scheme: str | None = "int8") -> nn.Module:
    """A quantized copy of `model` in eval mode (the original is untouched); `scheme` None
    returns `model` itself. Shape behaviour is unchanged: same inputs, same outputs."""
    device = next(model.parameters()).device
    scheme = check_quantize(scheme, device)
    if scheme is None:
        return model
    from torch.ao.quantization import quantize_dynamic

    from aiayn.nn.embeddings import OutputProjection

    _pick_engine()
    quantized = copy.deepcopy(model).eval()
    # torch.ao.quantization warns that it moves to the torchao package (not a dependency);
    # its dynamic int8 kernels are still torch's own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        for module in list(quantized.modules()):  # the tied output layer is no nn.Linear
            for name, child in module.named_children():
                if isinstance(child, OutputProjection):
                    setattr(module, name, Int8OutputProjection(child.weight))
        return quantize_dynamic(quantized, {nn.Linear}, dtype=torch.qint8)


class Int8OutputProjection(nn.Module):
    """The pre-softmax projection x·Eᵀ as a dynamic int8 linear (no bias, §3.4).

    Shape: x (B, T, D) -> logits (B, T, V) fp32.
    """

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import default_dynamic_qconfig

        V, D = weight.shape
        float_linear = nn.Linear(D, V, bias=False)
        float_linear.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        float_linear.qconfig = default_dynamic_qconfig
        self.linear = DynamicLinear.from_float(float_linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


def _pick_engine() -> None:
    """fbgemm's successor "x86" where available (AVX2/AVX-512 kernels), else what torch has."""
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm", "onednn", "qnnpack"):
        if engine in engines:
            torch.backends.quantized.engine = engine
            return


__all__ = ["SCHEMES", "Int8OutputProjection", "check_quantize", "quantize_model"]
