"""`aiayn train`: train a translation model on parallel text.

Settings come, lowest priority first, from the paper's defaults, the `--preset`, a `--config`
JSON recipe ({"preset": …, "model": {…}, "train": {…}, "data": {…}}), and the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from aiayn.errors import ConfigError

# flag name -> (section, field) in the recipe; each flag defaults to None = "not given"
_TRAIN_FLAGS = {
    "max_tokens": int, "max_sentences": int, "update_freq": int, "schedule": str,
    "warmup_steps": int, "lr_scale": float, "peak_lr": float, "decay_steps": int,
    "decay_minutes": float, "min_lr": float, "label_smoothing": float, "r_drop": float,
    "r_drop_start_step": int, "r_drop_start_minutes": float,
    "token_dropout": float, "bpe_dropout": float, "bidirectional_epochs": int,
    "clip_norm": float, "weight_decay": float, "max_steps": int, "max_epochs": int,
    "max_minutes": float, "valid_every": int, "valid_every_minutes": float, "keep_last": int,
    "average_last": int, "ema_decay": float, "ema_minutes": float,
    "patience": int, "best_metric": str, "precision": str, "seed": int, "log_every": int,
    "device": str,
}  # fmt: skip
_MODEL_FLAGS = {"dropout": float, "positional": str, "max_len": int}
_DATA_FLAGS = {"vocab_size": int, "tokenizer": str, "valid_beam": int, "valid_bleu_sentences": int}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a translation model on parallel text",
        description="Train an encoder-decoder Transformer with the paper's recipe (Adam "
        "0.9/0.98/1e-9, warm-up schedule, label smoothing 0.1, token batches). The --out "
        "directory becomes a model directory for `aiayn translate` and `aiayn evaluate`.",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--train-src", required=True, help="training source text, one sentence a line (.gz ok)"
    )
    g.add_argument(
        "--train-tgt", required=True, help="training target text, line i translates source line i"
    )
    g.add_argument("--valid-src", required=True, help="validation source text")
    g.add_argument("--valid-tgt", required=True, help="validation reference translations")
    g.add_argument("--out", required=True, help="output model directory")
    g.add_argument("--vocab-size", type=int, help="BPE vocabulary size [8000]")
    g.add_argument(
        "--separate-vocab",
        action="store_true",
        help="one vocabulary per language instead of a shared one (§5.1 shares)",
    )
    g.add_argument("--tokenizer", choices=["bpe", "wordpiece"], help="subword model [bpe]")
    g.add_argument(
        "--lowercase",
        action="store_true",
        help="lowercase all text: the model reads and writes lowercase only (the usual Multi30k "
        "preprocessing for lowercased BLEU; output is no longer true-cased) [keep case]",
    )
    g.add_argument("--valid-beam", type=int, help="beam size for validation BLEU [1 = greedy]")
    g.add_argument(
        "--valid-bleu-sentences",
        type=int,
        help="decode only the first N validation sentences for BLEU [all]",
    )

    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=["tiny", "small", "base", "big"], help="model size [small]")
    g.add_argument(
        "--config", help="JSON recipe with 'preset', 'model', 'train' and 'data' sections"
    )
    g.add_argument("--dropout", type=float, help="P_drop on sub-layer outputs and embeddings [0.1]")
    g.add_argument(
        "--positional",
        choices=["sinusoidal", "learned", "rope"],
        help="position encoding [sinusoidal]",
    )
    g.add_argument(
        "--max-len",
        type=int,
        help="longest sequence in tokens; longer training pairs are skipped [256]",
    )

    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--max-tokens", type=int, help="tokens per micro-batch (padded, larger side) [4096]"
    )
    g.add_argument("--max-sentences", type=int, help="sentences per micro-batch at most [no limit]")
    g.add_argument("--update-freq", type=int, help="micro-batches accumulated per step [1]")
    g.add_argument(
        "--schedule",
        choices=["noam", "inverse_sqrt", "cosine", "constant"],
        help="learning-rate schedule [noam, the paper's]",
    )
    g.add_argument("--warmup-steps", type=int, help="warm-up steps [4000]")
    g.add_argument("--lr-scale", type=float, help="multiplier of the noam schedule [1.0]")
    g.add_argument("--peak-lr", type=float, help="peak lr of inverse_sqrt/cosine/constant [5e-4]")
    g.add_argument(
        "--decay-steps", type=int, help="step where cosine reaches --min-lr [--max-steps]"
    )
    g.add_argument(
        "--decay-minutes",
        type=float,
        help="cosine over wall-clock time instead: reach --min-lr at this minute of the run "
        "(set it to --max-minutes; the warm-up stays in steps; the lr then follows the clock, "
        "so a resumed run is not bit-identical to a straight one) [off]",
    )
    g.add_argument("--min-lr", type=float, help="lr at the end of the cosine decay [0]")
    g.add_argument("--label-smoothing", type=float, help="ε_ls [0.1]")
    g.add_argument(
        "--r-drop",
        type=float,
        help="R-Drop: run each batch twice (two dropout masks) and add α × their symmetric KL "
        "to the loss, a regulariser for small corpora; a step costs ~2× [0 = off]",
    )
    g.add_argument(
        "--r-drop-start-step",
        type=int,
        help="R-Drop only from this optimiser step on, the plain loss before [from the start]",
    )
    g.add_argument(
        "--r-drop-start-minutes",
        type=float,
        help="R-Drop only from this minute of the run's clock on (resumes included), for "
        "time-boxed runs [from the start]",
    )
    g.add_argument(
        "--token-dropout",
        type=float,
        help="replace each source and decoder-input token of a training batch by <unk> with "
        "this probability (word dropout), a regulariser for small corpora [0 = off]",
    )
    g.add_argument(
        "--bpe-dropout",
        type=float,
        help="BPE-dropout: segment the training text anew each epoch, skipping each BPE merge "
        "with this probability (0.1 in the paper); a regulariser for small corpora, ~25%% more "
        "tokens per sentence at 0.1; BPE tokenizers only; it hurt on Multi30k's byte-level "
        "vocabulary (docs/results.md, run 18) [0 = off]",
    )
    g.add_argument(
        "--bidirectional-epochs",
        type=int,
        help="bidirectional training (BiT): the first N epochs train on every pair in both "
        "directions, target->source too, each such epoch twice as long; then the real "
        "direction alone. Needs the shared vocabulary; on Multi30k in an hour it moved val "
        "BLEU by +0.4, within noise (docs/results.md, run 22) [0 = off]",
    )
    g.add_argument("--clip-norm", type=float, help="clip the gradient L2 norm, 0 = off [0]")
    g.add_argument("--weight-decay", type=float, help="AdamW decay on weight matrices [0]")
    g.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "auto"],
        help="fp32, bf16 autocast, fp16 with loss scaling (CUDA), or auto: bf16 where the "
        "machine multiplies bf16 natively (measured at start-up), else fp32 on CPU and fp16 "
        "on GPUs without bf16. bf16 on a CPU without it (e.g. AVX2 only) is many times "
        "slower than fp32 [fp32]",
    )
    g.add_argument("--seed", type=int, help="random seed [1]")
    g.add_argument("--device", help="cpu, cuda, cuda:1 … [auto]")

    g = p.add_argument_group("stopping, validation and checkpoints")
    g.add_argument("--max-steps", type=int, help="optimiser steps [100000]")
    g.add_argument("--max-epochs", type=int, help="passes over the data [no limit]")
    g.add_argument(
        "--max-minutes",
        type=float,
        help="wall-clock budget of the run, resumes included [no limit]",
    )
    g.add_argument(
        "--valid-every",
        type=int,
        help="validate and checkpoint every N steps; 0 = only by --valid-every-minutes [1000]",
    )
    g.add_argument(
        "--valid-every-minutes",
        type=float,
        help="also validate and checkpoint every N minutes of the run's clock, so that the "
        "last K checkpoints span the same share of a time-boxed run on any machine; 0 = off "
        "[off]",
    )
    g.add_argument("--keep-last", type=int, help="checkpoints kept (plus the best) [5]")
    g.add_argument(
        "--average-last",
        type=int,
        help="export the average of the last K checkpoints [0 = export the best]",
    )
    g.add_argument(
        "--ema-decay",
        type=float,
        help="keep an exponential moving average of the weights, ema = d·ema + (1-d)·weights "
        "after each update (e.g. 0.999), and validate and export it instead of the raw "
        "weights; needs --average-last 0 [off]",
    )
    g.add_argument(
        "--ema-minutes",
        type=float,
        help="the same EMA with a time constant in minutes of training instead of a fixed d "
        "(each update decays it by exp(-its duration / N)), for time-boxed runs [off]",
    )
    g.add_argument(
        "--patience", type=int, help="stop after N validations without improvement [off]"
    )
    g.add_argument(
        "--best-metric",
        choices=["loss", "bleu", "ppl", "nll", "exact_match"],
        help="validation metric that picks the best checkpoint [loss]",
    )
    g.add_argument("--log-every", type=int, help="log training metrics every N steps [100]")
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    g.add_argument("--tensorboard", action="store_true", help="also log to --out/tensorboard")
    g.add_argument(
        "--compile", action="store_true", help="torch.compile the model (falls back to eager)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def build_configs(args: argparse.Namespace):
    """(ModelConfig, TrainConfig, DataOptions) from preset < recipe file < flags."""
    from aiayn.models import presets
    from aiayn.tasks.translation import DataOptions
    from aiayn.train.config import TrainConfig

    recipe: dict[str, Any] = {}
    if args.config:
        recipe = _read_recipe(Path(args.config))
    preset = args.preset or recipe.get("preset", "small")
    model_fields = dict(recipe.get("model", {}))
    train_fields = dict(recipe.get("train", {}))
    data_fields = dict(recipe.get("data", {}))
    for flags, fields in ((_MODEL_FLAGS, model_fields), (_TRAIN_FLAGS, train_fields)):
        for name in flags:
            if getattr(args, name, None) is not None:
                fields[name] = getattr(args, name)
    for name in _DATA_FLAGS:
        if getattr(args, name, None) is not None:
            data_fields[name] = getattr(args, name)
    for name in ("valid_every", "valid_every_minutes"):
        if train_fields.get(name) == 0:
            train_fields[name] = None  # 0 turns off an interval a recipe sets
    if args.separate_vocab:
        data_fields["joint"] = False
    if args.lowercase:
        data_fields["lowercase"] = True
    if args.tensorboard:
        train_fields["tensorboard"] = True
    if args.compile:
        train_fields["compile"] = True
    if "max_len" in model_fields:
        data_fields.setdefault("max_len", model_fields["max_len"])
    source = args.config or "command line"
    model_cfg = _build(lambda **kw: presets.get(preset, **kw), model_fields, source, "model")
    train_cfg = TrainConfig.from_dict(train_fields, source=source)
    data_opts = _build(DataOptions, data_fields, source, "data")
    return model_cfg, train_cfg, data_opts


def run(args: argparse.Namespace) -> int:
    from aiayn.tasks.translation import train_translation

    model_cfg, train_cfg, data_opts = build_configs(args)
    result = train_translation(
        args.train_src, args.train_tgt, args.valid_src, args.valid_tgt, args.out,
        model_cfg, train_cfg, data_opts, resume=args.resume,
        progress=False if args.no_progress else None,
    )  # fmt: skip
    print(json.dumps({"out": args.out, **dataclasses.asdict(result)}, default=str))
    return 0


def _read_recipe(path: Path) -> dict[str, Any]:
    from aiayn.io import read_json_object

    recipe = read_json_object(path, "training recipe")
    unknown = set(recipe) - {"preset", "model", "train", "data", "comment"}
    if unknown:
        raise ConfigError(
            f"{path}: a recipe has the keys preset, model, train, data; found {sorted(unknown)}"
        )
    return recipe


def _build(factory, fields: dict[str, Any], source: str, section: str):
    try:
        return factory(**fields)
    except TypeError as err:  # an unknown field name
        raise ConfigError(f"{source}: section '{section}': {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
