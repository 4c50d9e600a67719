"""Shape tracing: which dimension change belongs to which operation.

Blocks call `record("split heads", q)` at each step the paper names. Outside a `shape_trace`
context that is one global read and nothing else. Inside it, the step is appended with the
module path it happened in (found with forward hooks, so the blocks carry no naming code).

    with shape_trace(model) as steps:
        model(src, tgt)
    for step in steps:
        print(step.module, step.name, step.shape)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class TraceStep:
    module: str  # dotted module path, e.g. "encoder.layers.0.self_attn"
    name: str  # the operation, in the paper's terms
    shape: tuple[int, ...]
    dtype: str


_steps: list[TraceStep] | None = None
_scopes: list[str] = []


def record(name: str, tensor: Tensor) -> None:
    """Note the shape of `tensor` after operation `name` (no-op unless tracing)."""
    if _steps is not None:
        module = _scopes[-1] if _scopes else ""
        dtype = str(tensor.dtype).removeprefix("torch.")
        _steps.append(TraceStep(module, name, tuple(tensor.shape), dtype))


@contextmanager
def shape_trace(model: nn.Module) -> Iterator[list[TraceStep]]:
    """Record every `record(...)` call made during forward passes of `model`."""
    global _steps
    if _steps is not None:
        raise RuntimeError("shape_trace cannot be nested")

    def enter(name: str):
        return lambda module, args: _scopes.append(name or type(module).__name__)

    def leave(module, args, output):
        _scopes.pop()

    # A shared module (tied embeddings) has several paths; name it by all of them.
    names: dict[int, list[str]] = {}
    modules: dict[int, nn.Module] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), []).append(name)
        modules[id(module)] = module
    handles = []
    for key, module in modules.items():
        handles.append(module.register_forward_pre_hook(enter(" = ".join(names[key]))))
        handles.append(module.register_forward_hook(leave))
    _steps = []
    try:
        yield _steps
    finally:
        _steps = None
        _scopes.clear()
        for handle in handles:
            handle.remove()
