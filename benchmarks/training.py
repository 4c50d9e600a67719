"""Training throughput: target tokens/s of one full step, the same loop for every contender.

A step is forward, label-smoothed loss (ε = 0.1, the same function for all), backward and
Adam, with dropout on. Precision "bf16" wraps forward and loss in bf16 autocast; the weights
and the optimizer stay fp32 (mixed precision, as every contender trains in practice).
"""

from __future__ import annotations

import torch

from aiayn.models.info import estimate_flops
from aiayn.train.loss import label_smoothed_nll
from benchmarks.contenders import PAD, TRAINING_CONTENDERS, Dims
from benchmarks.measure import PeakMemory, autocast_for, median_seconds


def train_step_rate(
    contender: str,
    dims: Dims,
    precision: str,
    device: str,
    warmup: int,
    reps: int,
    optimizer: str = "fused",
    compile: bool = False,
) -> dict:
    """Target tokens/s and peak memory of one contender's training step.

    optimizer: "fused" (one kernel for all parameters; what aiayn's Trainer uses), "foreach"
    (torch's default) or "loop" (one parameter at a time) — to measure what fusing buys.
    """
    torch.manual_seed(0)
    model, forward = TRAINING_CONTENDERS[contender](dims)
    model.to(device)
    if compile:
        forward = torch.compile(forward)
    opt = torch.optim.Adam(
        model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9,
        fused=optimizer == "fused", foreach=optimizer == "foreach",
    )  # fmt: skip
    src = torch.randint(3, dims.vocab, (dims.batch, dims.src_len), device=device)
    tgt = torch.randint(3, dims.vocab, (dims.batch, dims.tgt_len + 1), device=device)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]  # (B, T) each: teacher forcing
    autocast = autocast_for(precision, device)

    def step() -> None:
        with autocast:
            loss = label_smoothed_nll(forward(src, tgt_in), tgt_out, 0.1, PAD).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with PeakMemory(device) as mem:
        seconds = median_seconds(step, warmup, reps, device)
    flops = estimate_flops(dims.model_config(), dims.src_len, dims.tgt_len)
    tokens = dims.batch * dims.tgt_len
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "step_ms": round(seconds * 1e3, 2),
        "flops_per_s": 3 * flops.forward * dims.batch / seconds,  # forward + backward ≈ 3×
        "peak_mem_mib": mem.mib,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
