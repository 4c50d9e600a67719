"""`aiayn model-info`: parameters, FLOPs per token and a shape trace of a preset."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    info = sub.add_parser(
        "model-info",
        help="parameters, FLOPs and a shape trace of a preset model",
        description="Parameter count by component, FLOPs per token, and the shape of every "
        "tensor in one forward pass, named in the paper's terms.",
    )
    info.add_argument(
        "--preset", default="base", choices=["tiny", "small", "base", "big"],
        help="model size: tiny/small fit a CPU, base/big are the paper's (default: base)",
    )  # fmt: skip
    info.add_argument(
        "--vocab-size", type=int, default=None, metavar="N",
        help="shared source/target vocabulary size (default: 37000 for base/big, 8000 else)",
    )  # fmt: skip
    info.add_argument("--batch", type=int, default=2, help="batch size of the traced sample")
    info.add_argument("--src-len", type=int, default=7, help="source length of the sample")
    info.add_argument("--tgt-len", type=int, default=5, help="target length of the sample")
    info.add_argument(
        "--flops-len", type=int, default=32, metavar="N",
        help="source and target length the FLOPs per token assume (default: 32)",
    )  # fmt: skip
    info.add_argument(
        "--all-layers", action="store_true", help="trace every layer, not only the first"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object instead")
    info.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiayn.models import EncoderDecoder, presets
    from aiayn.models.info import estimate_flops, format_trace, parameter_breakdown, trace_shapes

    overrides = {} if args.vocab_size is None else {"vocab_size": args.vocab_size}
    cfg = presets.get(args.preset, **overrides)
    import torch

    with torch.device("meta"):  # count parameters without allocating them
        params = parameter_breakdown(EncoderDecoder(cfg))
    flops = estimate_flops(cfg, args.flops_len, args.flops_len)
    steps = trace_shapes(cfg, args.batch, args.src_len, args.tgt_len)
    if args.json:
        info = {
            "preset": args.preset,
            "config": cfg.to_dict(),
            "parameters": params,
            "flops": flops.to_dict(),
            "shape_trace": [
                {"module": s.module, "step": s.name, "shape": list(s.shape)} for s in steps
            ],
        }
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0

    print(f"preset {args.preset}: {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, "
          f"d_model {cfg.d_model}, {cfg.n_heads} heads (d_k {cfg.head_dim}), d_ff {cfg.layer.d_ff}, "
          f"vocab {cfg.src_vocab_size}/{cfg.tgt_vocab_size}, tying '{cfg.tie_embeddings}', "
          f"{'pre' if cfg.layer.norm_first else 'post'}-LN, {cfg.positional} positions")  # fmt: skip
    print("\nparameters")
    for name, n in params.items():
        note = "  tied: the embedding matrix" if name == "output" and n == 0 else ""
        print(f"  {name:<12}{n:>14,}  ({n / 1e6:.2f}M){note}")
    print(f"\nFLOPs (matmuls, multiply-add = 2) for src_len {flops.src_len}, "
          f"tgt_len {flops.tgt_len}")  # fmt: skip
    print(f"  forward per target token   {flops.forward_per_tgt_token / 1e6:>10.1f} MFLOP")
    print(f"  training per target token  {flops.train_per_tgt_token / 1e6:>10.1f} MFLOP  (3×)")
    print(f"\nshape trace: batch {args.batch}, src_len {args.src_len}, tgt_len {args.tgt_len} "
          "(B, [heads,] positions, features); layers after the first repeat the first")  # fmt: skip
    for line in format_trace(steps, first_layer_only=not args.all_layers):
        print("  " + line)
    return 0
