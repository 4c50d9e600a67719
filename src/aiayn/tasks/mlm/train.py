"""`train_mlm`: everything `aiayn train mlm` does, as one function a notebook can call.

    from aiayn.models import presets
    from aiayn.tasks.mlm import MLMConfig, train_mlm
    from aiayn.train.config import TrainConfig

    train_mlm(["train.en", "train.de"], "runs/bert", presets.bert_mini(),
              TrainConfig(schedule="inverse_sqrt", peak_lr=5e-4, max_steps=10000))

The run directory becomes a model directory (config.json, model.safetensors, tokenizer.json)
that `aiayn train classify --init` fine-tunes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiayn.tasks.mlm.config import MLMConfig, higher_is_better

if TYPE_CHECKING:
    from aiayn.config import EncoderOnlyConfig
    from aiayn.tasks.mlm.data import Packed
    from aiayn.tokenizers.bert import BertTokenizer
    from aiayn.train.config import TrainConfig
    from aiayn.train.trainer import TrainResult

log = logging.getLogger(__name__)

TextFiles = str | os.PathLike | Sequence[str | os.PathLike]  # one text file, or several


def train_mlm(
    train_text: TextFiles,
    out_dir: str | Path,
    model_config: EncoderOnlyConfig,
    train_config: TrainConfig,
    task_config: MLMConfig | None = None,
    valid_text: TextFiles | None = None,
    resume: bool = False,
    progress: bool | None = None,
    tokenizer: BertTokenizer | None = None,
) -> TrainResult:
    """Pretrain an encoder-only model with the masked-LM objective on text files (one
    sentence or paragraph a line); return the Trainer's result.

    A WordPiece tokenizer is trained on the training text unless one is given (`tokenizer`,
    or a file in `task_config.tokenizer`: e.g. a published BERT vocabulary); on `resume` the
    run's own is reused. The model's vocabulary is sized from it. Without `valid_text` the last
    `valid_fraction` of each training file's lines validates.

    Raises:
        DataError: a missing, empty or non-UTF-8 text file (the line named).
        ConfigError: a bad option, a model that is not encoder-only, or `out_dir` holding
            another run (without `resume`).
    """
    import torch

    from aiayn.config import EncoderOnlyConfig
    from aiayn.errors import DataError
    from aiayn.models.encoder_only import EncoderOnly
    from aiayn.tasks.mlm.task import MLMTask
    from aiayn.tasks.run_dir import check_start, write_run_files
    from aiayn.tokenizers.bert import load_bert_tokenizer, train_bert_tokenizer
    from aiayn.tokenizers.text_files import source_paths
    from aiayn.train.trainer import Trainer

    task_config = task_config or MLMConfig()
    out_dir = check_start(  # fail before spending minutes on data
        out_dir, resume, model_config, EncoderOnlyConfig,
        "masked-LM pretraining needs an encoder-only model config (a preset such as bert-tiny, "
        "bert-mini, bert-small, bert-base)", higher_is_better, train_config.best_metric,
    )  # fmt: skip
    train_paths = source_paths(train_text)
    valid_paths = None if valid_text is None else source_paths(valid_text)
    if resume:
        tokenizer = load_bert_tokenizer(out_dir)
        model_config = EncoderOnlyConfig.load(out_dir / "config.json")
    else:
        if tokenizer is None and task_config.tokenizer is not None:
            tokenizer = load_bert_tokenizer(task_config.tokenizer)
        if tokenizer is None:
            tokenizer = train_bert_tokenizer(
                train_paths, vocab_size=task_config.vocab_size, lowercase=task_config.lowercase
            )
        model_config = model_config.replace(
            vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id
        )
    context = min(task_config.context or model_config.max_len, model_config.max_len)

    if task_config.parallel:
        train, valid = _read_parallel(train_paths, valid_paths, tokenizer, context, task_config)
    else:
        train, valid = _read_monolingual(train_paths, valid_paths, tokenizer, context,
                                         task_config)  # fmt: skip
    for data, what in ((train, "training"), (valid, "validation")):
        if not len(data):
            raise DataError(f"no {what} text: every line is empty; give text to pretrain on")

    torch.manual_seed(train_config.seed)  # the same initial weights for the same seed
    model = EncoderOnly(model_config)
    task = MLMTask(model, train, valid, tokenizer, task_config, seed=train_config.seed)
    trainer = Trainer(
        model, task, train_config, out_dir, progress=progress, d_model=model_config.d_model
    )
    write_run_files(out_dir, resume, tokenizer, model_config, task_config.to_dict(),
                    trainer.dist.is_main)  # fmt: skip
    log.info(
        "model: %.2fM parameters; %d training and %d validation sequences of <= %d tokens "
        "(WordPiece, %d ids)",
        model.num_parameters() / 1e6, len(train), len(valid), context, tokenizer.vocab_size,
    )  # fmt: skip
    return trainer.fit(resume=resume)


def _read_monolingual(
    train_paths: list[Path],
    valid_paths: list[Path] | None,
    tokenizer: BertTokenizer,
    context: int,
    task_config: MLMConfig,
) -> tuple[Packed, Packed]:
    """Each file's lines packed into sequences; without validation files the last
    `valid_fraction` of each training file's lines validates."""
    from aiayn.data.parallel import read_lines
    from aiayn.tasks.mlm.data import Packed, pack_lines

    train, valid = Packed([], [], []), Packed([], [], [])
    for path in train_paths:  # each file read once
        lines = read_lines(path)
        if valid_paths is None:
            cut = len(lines) - max(1, round(len(lines) * task_config.valid_fraction))
            valid.extend(pack_lines(tokenizer, lines[cut:], context))
            lines = lines[:cut]
        train.extend(pack_lines(tokenizer, lines, context))
    for path in valid_paths or ():
        valid.extend(pack_lines(tokenizer, read_lines(path), context))
    return train, valid


def _read_parallel(
    train_paths: list[Path],
    valid_paths: list[Path] | None,
    tokenizer: BertTokenizer,
    context: int,
    task_config: MLMConfig,
) -> tuple[Packed, Packed]:
    """One sequence per line pair of the two training files; without validation files the
    last `valid_fraction` of the pairs validates."""
    from aiayn.tasks.mlm.data import pack_pairs

    first, second = _two_sides(train_paths, "--train-text")
    if valid_paths is None:
        cut = len(first) - max(1, round(len(first) * task_config.valid_fraction))
        valid = pack_pairs(tokenizer, first[cut:], second[cut:], context)
        first, second = first[:cut], second[:cut]
    else:
        valid = pack_pairs(tokenizer, *_two_sides(valid_paths, "--valid-text"), context)
    return pack_pairs(tokenizer, first, second, context), valid


def _two_sides(paths: list[Path], flag: str) -> tuple[list[str], list[str]]:
    """The lines of the two sides of a parallel corpus; ConfigError/DataError unless there
    are exactly two files of as many lines."""
    from aiayn.data.parallel import read_lines
    from aiayn.errors import ConfigError, DataError

    if len(paths) != 2:
        raise ConfigError(
            f"parallel pretraining takes two {flag} files, one per language (line i of one "
            f"translates line i of the other); got {len(paths)}"
        )
    first, second = read_lines(paths[0]), read_lines(paths[1])
    if len(first) != len(second):
        raise DataError(
            f"{paths[0]} has {len(first)} lines but {paths[1]} has {len(second)}; the sides of "
            "a parallel corpus need one line per sentence pair"
        )
    return first, second


__all__ = ["train_mlm"]
