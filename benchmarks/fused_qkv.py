"""Does a fused QKV projection pay on this machine? Three Linear(D, D) against one Linear(D, 3D).

    python -m benchmarks.fused_qkv

aiayn keeps W_Q, W_K, W_V as separate modules (the paper's names in the state dict). Fusing
them turns three matmuls into one wider one, which saves kernel launches on a GPU; this
measures whether it saves anything here, for a training batch (forward + backward) and for one
decoding step (forward only), in fp32 and bf16. Prints one JSON object: microseconds per call
and fused / separate speed-ups.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from benchmarks.measure import median_seconds


def compare(rows: int, d_model: int, dtype: torch.dtype, backward: bool) -> dict:
    torch.manual_seed(0)
    separate = [nn.Linear(d_model, d_model) for _ in range(3)]
    fused = nn.Linear(d_model, 3 * d_model)
    x = torch.randn(rows, d_model, requires_grad=backward)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)

    def run(project) -> None:
        with autocast, torch.set_grad_enabled(backward):
            out = project()
        if backward:
            sum(o.float().sum() for o in out).backward()

    times = {
        "separate": median_seconds(lambda: run(lambda: [m(x) for m in separate]), 5, 30, "cpu"),
        "fused": median_seconds(lambda: run(lambda: fused(x).split(d_model, -1)), 5, 30, "cpu"),
    }
    return {
        "us": {k: round(v * 1e6, 1) for k, v in times.items()},
        "fused_speedup": round(times["separate"] / times["fused"], 2),
    }


def main() -> None:
    results = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        results[f"train 3200×256 {dtype_name}"] = compare(3200, 256, dtype, backward=True)
        results[f"train 3200×512 {dtype_name}"] = compare(3200, 512, dtype, backward=True)
        results[f"decode step 256×256 {dtype_name}"] = compare(256, 256, dtype, backward=False)
    print(json.dumps({"threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
