"""`train_lm`: everything `aiayn train lm` does, as one function a notebook can call. Its heavy
imports (torch, the model, the Trainer) wait for the call, so that the command line can name it
in its task table without loading them.

    from aiayn.models import presets
    from aiayn.tasks.lm import LMConfig, train_lm
    from aiayn.train.config import TrainConfig

    train_lm("input.txt", "runs/shakespeare", presets.baby_gpt(),
             TrainConfig(schedule="cosine", peak_lr=1e-3, max_steps=5000), LMConfig(batch_size=64))

The run directory becomes a model directory (`aiayn generate --model runs/shakespeare`):

    config.json, model.safetensors, tokenizer.json   the best model so far, and its tokenizer
    data/train.tokens (+ .json), data/valid.tokens   the encoded text (rebuilt only if changed)
    checkpoints/, metrics.jsonl, train_config.json, task_config.json
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiayn.tasks.lm.config import LMConfig, higher_is_better

if TYPE_CHECKING:
    from aiayn.config import DecoderOnlyConfig
    from aiayn.train.config import TrainConfig
    from aiayn.train.trainer import TrainResult

log = logging.getLogger(__name__)

TextFiles = str | os.PathLike | Sequence[str | os.PathLike]  # one text file, or several
DATA_DIR = "data"  # the run's token files: OUT/data/train.tokens, OUT/data/valid.tokens


def train_lm(
    train_text: TextFiles,
    out_dir: str | Path,
    model_config: DecoderOnlyConfig,
    train_config: TrainConfig,
    task_config: LMConfig | None = None,
    valid_text: TextFiles | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Train a decoder-only language model on text files; return the Trainer's result.

    The tokenizer (`task_config.tokenizer`) is trained on the training text and the model's
    vocabulary sized from it; each training file is one document (framed by end-of-text
    tokens). Without `valid_text` the last `valid_fraction` of the training tokens validates.
    On `resume`, the tokenizer and model config saved in `out_dir` are reused. The context of
    the training windows is `task_config.context`, else the model's `max_len`.

    Raises:
        DataError: a missing, empty or non-UTF-8 text file (the line and byte named), or text
            shorter than one window of context + 1 tokens.
        ConfigError: a bad option, or `out_dir` holding another run (without `resume`).
    """
    import torch

    from aiayn.config import DecoderOnlyConfig
    from aiayn.data.lm_blocks import check_enough_tokens, split_tokens
    from aiayn.data.token_file import build_token_file
    from aiayn.models.decoder_only import DecoderOnly
    from aiayn.tasks.lm.task import LMTask
    from aiayn.tasks.run_dir import check_start, write_run_files
    from aiayn.tokenizers.lm import load_lm_tokenizer, train_lm_tokenizer
    from aiayn.tokenizers.text_files import source_paths
    from aiayn.train.trainer import Trainer

    task_config = task_config or LMConfig()
    out_dir = check_start(  # fail before spending minutes on data
        out_dir, resume, model_config, DecoderOnlyConfig,
        "a language model needs a decoder-only model config (a preset such as gpt-mini, "
        "baby-gpt, gpt2)", higher_is_better, train_config.best_metric,
    )  # fmt: skip
    train_paths = source_paths(train_text)
    valid_paths = None if valid_text is None else source_paths(valid_text)
    show = progress is not False
    if resume:
        tokenizer = load_lm_tokenizer(out_dir)
        model_config = DecoderOnlyConfig.load(out_dir / "config.json")
    else:
        tokenizer = train_lm_tokenizer(
            task_config.tokenizer, train_paths, vocab_size=task_config.vocab_size
        )
        model_config = model_config.replace(
            vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id
        )
    context = task_config.context or model_config.max_len
    data = out_dir / DATA_DIR
    tokens = build_token_file(train_paths, tokenizer, data / "train.tokens", progress=show)
    if valid_paths is None:
        check_enough_tokens(len(tokens), context, "the training text")
        train_tokens, valid_tokens = split_tokens(tokens, task_config.valid_fraction)
        what = (
            f"the validation split (the last {task_config.valid_fraction:g} of the training "
            "text; give a validation file or raise valid_fraction)"
        )
    else:
        train_tokens = tokens
        valid_tokens = build_token_file(valid_paths, tokenizer, data / "valid.tokens",
                                        progress=show)  # fmt: skip
        what = "the validation text"
    check_enough_tokens(len(train_tokens), context, "the training text")
    check_enough_tokens(len(valid_tokens), context, what)

    torch.manual_seed(train_config.seed)  # the same initial weights for the same seed
    model = DecoderOnly(model_config)
    task = LMTask(model, train_tokens, valid_tokens, tokenizer, task_config, seed=train_config.seed)
    trainer = Trainer(
        model, task, train_config, out_dir, progress=progress, d_model=model_config.d_model
    )
    write_run_files(out_dir, resume, tokenizer, model_config, task_config.to_dict(),
                    trainer.dist.is_main)  # fmt: skip
    log.info(
        "model: %.2fM parameters; %s training and %s validation tokens (%s tokenizer, %d ids), "
        "context %d",
        model.num_parameters() / 1e6, f"{len(train_tokens):,}", f"{len(valid_tokens):,}",
        tokenizer.kind, tokenizer.vocab_size, context,
    )  # fmt: skip
    return trainer.fit(resume=resume)


__all__ = ["train_lm"]
