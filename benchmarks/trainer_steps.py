"""Trainer-level switches, timed where the harness's fixed-shape rows cannot see them: training
steps whose batch shapes change every step.

    python -m benchmarks.trainer_steps [--compare allocator] [--size multi30k] [--steps 40]
    python -m benchmarks.trainer_steps --compare dropout --dropout 0.3
    python -m benchmarks.trainer_steps --compare precision --steps 10

The harness's training rows time one fixed batch shape. A real run does not: token-based
batching gives every step a different (sentences × length), so every step allocates buffers of
new sizes. This times training steps (bf16 autocast unless said otherwise) of the same model
over batches shaped like `TokenBatchSampler`'s (max_tokens 4096: lengths 8–40, as many sentences
as fit) twice, each in a fresh process:

- `--compare allocator`: glibc's default malloc against `aiayn.train.allocator.keep_freed_memory`
  (what `Trainer` calls on a CPU);
- `--compare dropout`: every `aiayn.nn.Dropout` replaced by `torch.nn.Dropout` against aiayn's
  own CPU masks, both with the Trainer's malloc setting;
- `--compare precision`: fp32 against bf16 autocast, what `precision="auto"` decides between on
  a CPU (`aiayn.train.precision`). Where the CPU has no native bf16 each bf16 step takes
  seconds, hence `--steps 10`.

Prints one JSON object: target tokens/s, kernel (system) CPU seconds and minor page faults per
step, peak resident memory, and the speed-up of the second setting over the first.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from dataclasses import asdict

import torch

from benchmarks.contenders import PAD, SIZES, Dims, with_torch_dropout
from benchmarks.measure import in_worker

MAX_TOKENS = 4096


def batch_shapes(steps: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """(sentences, source length, target length) per step, the way length buckets fill."""
    rng = random.Random(seed)
    shapes = []
    for _ in range(steps):
        src_len = rng.randint(8, 40)
        tgt_len = max(4, src_len + rng.randint(-3, 3))
        shapes.append((MAX_TOKENS // max(src_len, tgt_len), src_len, tgt_len))
    return shapes


def changing_shape_steps(
    dims: Dims,
    steps: int,
    warmup: int,
    dropout: float = 0.1,
    torch_dropout: bool = False,
    precision: str = "bf16",
) -> dict:
    """Training steps over changing batch shapes (run in a worker; its spec's "keep_freed"
    decides the malloc setting before anything is allocated). `torch_dropout` swaps aiayn's
    dropout modules for torch's; `precision` is "bf16" (autocast) or "fp32"."""
    from aiayn.models import EncoderDecoder
    from aiayn.train.loss import label_smoothed_nll

    torch.manual_seed(0)
    model = EncoderDecoder(dims.model_config(dropout=dropout))
    if torch_dropout:
        model = with_torch_dropout(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
    vocab = dims.vocab
    tokens = 0
    seconds = 0.0
    start = resource.getrusage(resource.RUSAGE_SELF)
    for i, (batch, src_len, tgt_len) in enumerate(batch_shapes(warmup + steps)):
        if i == warmup:
            start, tokens, seconds = resource.getrusage(resource.RUSAGE_SELF), 0, 0.0
        src = torch.randint(3, vocab, (batch, src_len))
        tgt = torch.randint(3, vocab, (batch, tgt_len + 1))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = label_smoothed_nll(model(src, tgt[:, :-1]), tgt[:, 1:], 0.1, PAD).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - t0
        tokens += batch * tgt_len
    end = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "sys_seconds_per_step": round((end.ru_stime - start.ru_stime) / steps, 3),
        "minor_faults_per_step": round((end.ru_minflt - start.ru_minflt) / steps),
        "peak_rss_mib": round(end.ru_maxrss / 1024),
    }


# --compare → the two settings timed: name → worker spec (the second is the candidate)
COMPARISONS = {
    "allocator": {
        "glibc default": {"keep_freed": False},
        "keep freed memory": {"keep_freed": True},
    },
    "dropout": {
        "torch.nn.Dropout": {"keep_freed": True, "torch_dropout": True},
        "aiayn.nn.Dropout": {"keep_freed": True, "torch_dropout": False},
    },
    "precision": {
        "fp32": {"keep_freed": True, "precision": "fp32"},
        "bf16 autocast": {"keep_freed": True, "precision": "bf16"},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--compare", choices=list(COMPARISONS), default="allocator",
        help="allocator: glibc's malloc vs the Trainer's setting; dropout: torch.nn.Dropout vs "
        "aiayn's CPU masks; precision: fp32 vs bf16 autocast [allocator]",
    )  # fmt: skip
    parser.add_argument("--size", choices=list(SIZES), default="multi30k", help="model size")
    parser.add_argument("--steps", type=int, default=40, help="timed steps [40]")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first [5]")
    parser.add_argument(
        "--dropout", type=float, default=0.1, help="P_drop of the model (the recipe's: 0.3) [0.1]"
    )
    args = parser.parse_args()
    dims = asdict(SIZES[args.size])
    common = dict(dims=dims, steps=args.steps, warmup=args.warmup, dropout=args.dropout)
    results = {
        name: in_worker("changing_shapes", **common, **spec)
        for name, spec in COMPARISONS[args.compare].items()
    }
    rates = [r.get("tokens_per_s") for r in results.values()]
    speedup = round(rates[1] / rates[0], 2) if all(rates) else None
    report = {"compare": args.compare, "size": args.size, "dropout": args.dropout}
    if args.compare == "precision":
        from aiayn.train.precision import cpu_bf16_slowdown

        report["probe_bf16_slowdown"] = round(cpu_bf16_slowdown(), 2)  # what "auto" decides on
    print(json.dumps({**report, "results": results, "speedup": speedup}))
    if not all(rates):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
