"""Training-step throughput of aiayn on this machine: attention path × precision.

    python -m benchmarks.train_step            # Multi30k-sized model (3+3, d 256, 8k vocab)

Prints one JSON object: target tokens/s of a full step (forward, label-smoothed loss, backward,
Adam) for the reference ("math") and fused ("sdpa") attention paths, in fp32 and bf16 autocast,
run back to back in one process, and each path's ratio to fp32 SDPA.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder
from aiayn.train.loss import label_smoothed_nll


def tokens_per_second(impl: str, precision: str, args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    cfg = ModelConfig(
        src_vocab_size=args.vocab, tgt_vocab_size=args.vocab, d_model=args.d_model,
        n_heads=args.heads, d_ff=4 * args.d_model, n_encoder_layers=args.layers,
        n_decoder_layers=args.layers, dropout=0.1, attention_impl=impl,
    )  # fmt: skip
    model = EncoderDecoder(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
    src = torch.randint(4, args.vocab, (args.batch, args.src_len))
    tgt = torch.randint(4, args.vocab, (args.batch, args.tgt_len))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = label_smoothed_nll(model(src, tgt), tgt, 0.1, 0).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * args.batch * args.tgt_len / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--batch", type=int, default=240, help="sentences per step")
    p.add_argument("--src-len", type=int, default=15)
    p.add_argument("--tgt-len", type=int, default=17)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    results = {
        f"{impl}_{prec}": round(tokens_per_second(impl, prec, args))
        for prec in ("fp32", "bf16")
        for impl in ("sdpa", "math")
    }
    base = results["sdpa_fp32"]
    print(json.dumps({
        "tokens_per_s": results,
        "ratio_to_sdpa_fp32": {k: round(v / base, 2) for k, v in results.items()},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "args": vars(args),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
