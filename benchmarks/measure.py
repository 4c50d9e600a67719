"""How the harness measures: step times, peak memory, the matmul peak, one worker per measurement.

Each measurement runs in a fresh Python process (`python -m benchmarks.worker`), back to back,
so contenders do not share allocator caches and each one's peak memory is its own.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def median_seconds(fn: Callable[[], object], warmup: int, reps: int, device: str) -> float:
    """Median wall time of `fn` over `reps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast_for(precision: str, device: str):
    """The context a training step of `precision` runs in: bf16 autocast on `device`'s kind,
    or nothing for fp32 (the weights stay fp32 either way)."""
    if precision == "bf16":
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory of the code inside the `with` block, in MiB, beyond what existed before it.

    CUDA: the allocator's peak. CPU: the process's peak resident set (VmHWM), which Linux
    resets to the current size when "5" is written to /proc/self/clear_refs.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.mib: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            with contextlib.suppress(OSError):  # not Linux: the peak since start-up instead
                Path("/proc/self/clear_refs").write_text("5")
            self.before = _proc_status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _proc_status_kib("VmHWM") * 1024
        self.mib = round(max(peak - self.before, 0) / 2**20, 1)


def _proc_status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def matmul_peak_flops(dtype: torch.dtype, device: str, n: int = 2048, reps: int = 10) -> float:
    """The best FLOP/s of an n×n×n matmul in `dtype` on this machine: the MFU denominator."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(3):
        a @ b  # warm up the kernel choice
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def in_worker(task: str, **spec) -> dict:
    """Run one measurement in a fresh process and return its JSON result.

    A worker that fails (e.g. a peer library missing) gives {"error": "..."} instead of
    stopping the whole run.
    """
    cmd = [sys.executable, "-m", "benchmarks.worker", task, json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{task} {spec.get('contender', '')}: {last}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])
