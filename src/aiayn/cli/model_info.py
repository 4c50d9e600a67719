"""`aiayn model-info`: parameters, FLOPs per token and a shape trace of a preset or a model
directory, for every family (encoder-decoder, decoder-only, encoder-only)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    from aiayn.models.presets import BERT_PRESETS, LM_PRESETS, PRESETS, VIT_PRESETS

    info = sub.add_parser(
        "model-info",
        help="parameters, FLOPs and a shape trace of a preset or a saved model",
        description="Parameter count by component, FLOPs per token, and the shape of every "
        "tensor in one forward pass, named in the paper's terms. Any family: the paper's "
        "encoder-decoder presets, the decoder-only (GPT) ones, or a model directory.",
    )
    which = info.add_mutually_exclusive_group()
    which.add_argument(
        "--preset", default="base",
        choices=[*PRESETS, *LM_PRESETS, *BERT_PRESETS, *VIT_PRESETS],
        help="model size: tiny/small fit a CPU, base/big are the paper's; gpt-mini, baby-gpt "
        "and gpt2 (GPT-2 small) are decoder-only; bert-tiny, bert-mini, bert-small and "
        "bert-base are encoder-only; vit-tiny, vit-small and vit-base (ViT-B/16) are vision "
        "models at 224×224 (default: base)",
    )  # fmt: skip
    which.add_argument(
        "--model", metavar="DIR", default=None,
        help="a model directory (config.json of any arch) instead of a preset; its weights "
        "are not read",
    )  # fmt: skip
    info.add_argument(
        "--vocab-size", type=int, default=None, metavar="N",
        help="vocabulary size of a preset (default: the preset's, e.g. 37000 for base/big, "
        "50257 for gpt2)",
    )  # fmt: skip
    info.add_argument("--batch", type=int, default=2, help="batch size of the traced sample")
    info.add_argument(
        "--src-len", type=int, default=7, help="source length of the sample (encoder-decoder)"
    )
    info.add_argument(
        "--tgt-len", "--seq-len", dest="tgt_len", type=int, default=5,
        help="target length of the sample (the sequence length of a decoder-only model)",
    )  # fmt: skip
    info.add_argument(
        "--flops-len", type=int, default=32, metavar="N",
        help="sequence length the FLOPs per token assume, source and target alike "
        "(default: 32)",
    )  # fmt: skip
    info.add_argument(
        "--all-layers", action="store_true", help="trace every layer, not only the first"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object instead")
    info.set_defaults(run=run)


def _load(args: argparse.Namespace):
    """(label, config) of the preset or directory the arguments name."""
    from pathlib import Path

    from aiayn.config import load_config
    from aiayn.errors import ConfigError
    from aiayn.models import presets
    from aiayn.models.serialization import CONFIG_NAME, run_dir_of_checkpoint

    if args.model is None:
        overrides = {} if args.vocab_size is None else {"vocab_size": args.vocab_size}
        return f"preset {args.preset}", presets.get(args.preset, **overrides)
    if args.vocab_size is not None:
        raise ConfigError("--vocab-size applies to presets; a model directory has its own")
    directory = Path(args.model)
    path = (run_dir_of_checkpoint(directory) or directory) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{directory}: no {CONFIG_NAME}; is this a model directory?")
    return f"model {directory}", load_config(path)


def _describe(label: str, cfg) -> str:
    """One line: the family and its settings."""
    layer = cfg.layer
    common = (
        f"d_model {cfg.d_model}, {cfg.n_heads} heads (d_k {cfg.layer.key_dim}), d_ff {layer.d_ff}, "
        f"{'pre' if layer.norm_first else 'post'}-LN, {layer.activation}, "
        f"{cfg.positional} positions"
    )
    if layer.attention_window is not None:
        common += f", attention window {layer.attention_window}"
    if cfg.arch == "decoder_only":
        return (
            f"{label}: decoder-only, {cfg.n_layers} layers, {common}, vocab {cfg.vocab_size}, "
            f"context {cfg.max_len}, {'tied' if cfg.tie_embeddings else 'separate'} output"
        )
    if cfg.arch == "vision":
        mixer = (
            "attention"
            if cfg.mixer == "attention"
            else (f"{cfg.pool_size}×{cfg.pool_size} pooling (PoolFormer)")
        )
        return (
            f"{label}: vision (ViT), {cfg.n_layers} layers, {common}, {mixer} mixer, "
            f"{cfg.image_size}×{cfg.image_size}×{cfg.channels} images in {cfg.patch_size}×"
            f"{cfg.patch_size} patches ({cfg.num_tokens} tokens), {cfg.pooling} pooling, "
            f"{cfg.num_labels} classes"
        )
    if cfg.arch == "encoder_only":
        head = f"{cfg.num_labels}-class head ({cfg.pooling})" if cfg.num_labels else "no classifier"
        return (
            f"{label}: encoder-only, {cfg.n_layers} layers, {common}, vocab {cfg.vocab_size}, "
            f"{cfg.max_len} positions, {cfg.type_vocab_size} segments, tied MLM head, {head}"
        )
    return (
        f"{label}: encoder-decoder, {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, "
        f"{common}, vocab {cfg.src_vocab_size}/{cfg.tgt_vocab_size}, "
        f"tying '{cfg.tie_embeddings}'"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from aiayn.models.info import flops_per_token, format_trace, parameter_breakdown, trace_shapes
    from aiayn.models.serialization import ARCHITECTURES

    label, cfg = _load(args)
    lm = cfg.arch != "encoder_decoder"  # one sequence, not a source and a target
    with torch.device("meta"):  # count parameters without allocating them
        params = parameter_breakdown(ARCHITECTURES[cfg.arch](cfg))
    flops = flops_per_token(cfg, args.flops_len)
    steps = trace_shapes(cfg, args.batch, args.src_len, args.tgt_len)
    if args.json:
        source = {"preset": args.preset} if args.model is None else {"model": args.model}
        info = {
            **source,
            "arch": cfg.arch,
            "config": cfg.to_dict(),
            "parameters": params,
            "flops": flops.to_dict(),
            "shape_trace": [
                {"module": s.module, "step": s.name, "shape": list(s.shape)} for s in steps
            ],
        }
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0

    token = "token" if lm else "target token"
    print(_describe(label, cfg))
    print("\nparameters")
    for name, n in params.items():
        note = "  tied: the embedding matrix" if name == "output" and n == 0 else ""
        print(f"  {name:<12}{n:>14,}  ({n / 1e6:.2f}M){note}")
    lengths = f"seq_len {flops.tgt_len}" if lm else (
        f"src_len {flops.src_len}, tgt_len {flops.tgt_len}"
    )  # fmt: skip
    if cfg.arch == "vision":  # an image's token count is fixed by its size
        lengths = f"one {cfg.image_size}×{cfg.image_size} image, {cfg.num_tokens} tokens"
    print(f"\nFLOPs (matmuls, multiply-add = 2) for {lengths}")
    print(f"  forward per {token:<14}{flops.forward_per_tgt_token / 1e6:>12.1f} MFLOP")
    print(f"  training per {token:<13}{flops.train_per_tgt_token / 1e6:>12.1f} MFLOP  (3×)")
    sample = f"seq_len {args.tgt_len}" if lm else f"src_len {args.src_len}, tgt_len {args.tgt_len}"
    if cfg.arch == "vision":
        sample = lengths
    print(f"\nshape trace: batch {args.batch}, {sample} "
          "(B, [heads,] positions, features); layers after the first repeat the first")  # fmt: skip
    for line in format_trace(steps, first_layer_only=not args.all_layers):
        print("  " + line)
    return 0
