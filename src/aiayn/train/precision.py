"""Which number format to train in, measured on the machine rather than assumed.

bf16 autocast is the fast choice only where the hardware multiplies bf16 natively: Intel's AMX
and AVX-512 BF16, recent ARM cores, and CUDA GPUs from Ampere on. Elsewhere PyTorch emulates
bf16 matmuls. On an AVX2-only 2-core AMD EPYC a (256 × 256) @ (256 × 256) bf16 matmul took
42–67× as long as in fp32 and a training step 31× (docs/benchmarks.md), so a recipe that said
"bf16" trained at a crawl there, while on the AMX machine it was written for bf16 matmuls run
~4× faster than fp32.
CPU feature flags do not say which case applies on every OS and architecture; one small probe
matmul in each format does, in a few milliseconds where bf16 is fast (a fraction of a second
where it is emulated), once per process.

`precision="auto"` resolves to:
- CPU: "bf16" if the probe's bf16 matmul is clearly faster than its fp32 one, else "fp32";
- CUDA: "bf16" where the GPU supports it, else "fp16" (with the Trainer's loss scaler);
- anything else: "fp32".
"""

from __future__ import annotations

import functools
import logging
import time

import torch

log = logging.getLogger(__name__)

#: bf16 counts as fast when its probe matmul takes at most this fraction of fp32's time. Native
#: bf16 is 1.5-4× faster than fp32 (AVX-512 BF16, AMX); emulated bf16 is 25-80× slower. Near
#: parity fp32 is preferred: same speed, more precision.
FAST_FRACTION = 0.8
#: bf16 given explicitly on a CPU slower than this × fp32 gets a warning.
SLOW_FACTOR = 2.0

# (m, k) @ (k, n) of the probe: one d_model × d_model projection of 256 tokens of the Multi30k
# model, big enough for AMX's tiles to pay off, small enough to take ~0.1 s where emulated.
_PROBE_SHAPE = (256, 256, 256)


def _operands(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    m, k, n = _PROBE_SHAPE
    gen = torch.Generator().manual_seed(0)  # the global RNG stream stays untouched
    return torch.randn(m, k, generator=gen).to(dtype), torch.randn(k, n, generator=gen).to(dtype)


def _seconds(a: torch.Tensor, b: torch.Tensor) -> float:
    start = time.perf_counter()
    a @ b
    return time.perf_counter() - start


@functools.cache
def cpu_bf16_slowdown() -> float:
    """How many times longer a bf16 matmul takes than an fp32 one on this CPU (< 1: bf16 is
    faster). Measured once per process, on one thread: the ratio is a property of the core, and
    a second thread only adds the wait for a busy core to the timings.

    The two formats are timed in alternation and each keeps its best time, so a burst of load
    from another process slows both rather than one; rounds go on until 20 are done or ~0.1 s is
    spent (3 rounds where emulated bf16 takes ~30 ms a matmul)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32_ops, bf16_ops = _operands(torch.float32), _operands(torch.bfloat16)
        for a, b in (fp32_ops, bf16_ops):
            a @ b  # first call: kernel selection, packing buffers
        fp32 = bf16 = float("inf")
        spent, rounds = 0.0, 0
        while rounds < 20 and (rounds < 3 or spent < 0.1):
            fp32_round, bf16_round = _seconds(*fp32_ops), _seconds(*bf16_ops)
            fp32, bf16 = min(fp32, fp32_round), min(bf16, bf16_round)
            spent += fp32_round + bf16_round
            rounds += 1
    finally:
        torch.set_num_threads(threads)
    return bf16 / fp32


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision to train in on `device`: `requested` itself unless it is "auto"."""
    if requested != "auto":
        if requested == "bf16" and device.type == "cpu":
            slowdown = cpu_bf16_slowdown()
            if slowdown > SLOW_FACTOR:
                log.warning(
                    "precision 'bf16': this CPU has no native bf16 matmuls (a bf16 matmul takes "
                    "%.0f× as long as fp32), so training will be far slower than in fp32; use "
                    "--precision auto or fp32",
                    slowdown,
                )
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type != "cpu":
        return "fp32"
    slowdown = cpu_bf16_slowdown()
    chosen = "bf16" if slowdown <= FAST_FRACTION else "fp32"
    log.info("precision auto -> %s (a bf16 matmul takes %.2f× fp32's time here)", chosen, slowdown)
    return chosen
