"""Which device a run asks for, checked against what this machine has.

`torch.device("foo")` fails with a list of every backend PyTorch knows, and a CUDA device on a
machine without one fails at the first tensor moved to it, deep inside loading or training.
One check up front turns both into a one-line error that lists the devices that do exist.
"""

from __future__ import annotations

import torch

from aiayn.errors import ConfigError


def available_devices() -> list[str]:
    """The devices a run can use here: cpu, then cuda:0 … and mps where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(name: str | torch.device, what: str = "device") -> torch.device:
    """`name` as a torch.device this machine has ("auto": the first CUDA GPU, else the CPU);
    ConfigError naming `what` (the field or flag) and the devices that exist otherwise."""
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    here = ", ".join(available_devices())
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what} {name!r} is not a device name; devices here: {here}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{what} {name!r}: this machine has no CUDA GPU; devices here: {here}"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{what} {name!r}: no such GPU; devices here: {here}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what} {name!r}: MPS is not available here; devices here: {here}")
    elif device.type not in ("cpu", "cuda", "mps", "meta"):
        raise ConfigError(f"{what} {name!r}: aiayn runs on cpu, cuda or mps; devices here: {here}")
    return device
