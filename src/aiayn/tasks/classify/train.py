"""`train_classify`: everything `aiayn train classify` does, as one function.

    from aiayn.models import presets
    from aiayn.tasks.classify import ClassifyConfig, train_classify
    from aiayn.train.config import TrainConfig

    train_classify("train.tsv", "dev.tsv", "runs/sst2", presets.bert_mini(),
                   TrainConfig(schedule="linear"…), ClassifyConfig(), init="runs/bert")

The run directory becomes a model directory (config.json, model.safetensors, tokenizer.json,
labels.json) for `aiayn classify` and `aiayn.classify`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aiayn.tasks.classify.config import ClassifyConfig, higher_is_better

if TYPE_CHECKING:
    from aiayn.config import EncoderOnlyConfig
    from aiayn.train.config import TrainConfig
    from aiayn.train.trainer import TrainResult

log = logging.getLogger(__name__)


def train_classify(
    train: str | os.PathLike,
    valid: str | os.PathLike,
    out_dir: str | Path,
    model_config: EncoderOnlyConfig,
    train_config: TrainConfig,
    task_config: ClassifyConfig | None = None,
    init: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Fine-tune a sequence classifier on labelled data (.tsv as GLUE, .csv, .jsonl); return
    the Trainer's result.

    With `init` (a model directory of `train_mlm`, or any encoder-only model directory), the
    encoder, its tokenizer and its architecture come from there and only the classifier (and
    BERT's pooler) start fresh; `model_config` then contributes its `pooling` and dropouts.
    Without, a WordPiece tokenizer is trained on the training texts and `model_config` is
    trained from scratch. The labels are the training file's, sorted (`LabelSet`).

    Raises:
        DataError: unreadable data (file, line and column named), or a validation label the
            training data never has.
        ConfigError: a bad option, a model that is not encoder-only, or `out_dir` holding
            another run (without `resume`).
    """
    import torch

    from aiayn.config import EncoderOnlyConfig
    from aiayn.data.labelled import LabelSet, load_labels, read_labelled, save_labels
    from aiayn.errors import ConfigError
    from aiayn.models.encoder_only import EncoderOnly
    from aiayn.models.serialization import load_pretrained, require_arch
    from aiayn.tasks.classify.task import ClassifyTask, Examples
    from aiayn.tasks.run_dir import check_start, write_run_files
    from aiayn.tokenizers.bert import load_bert_tokenizer, train_bert_tokenizer_on_texts
    from aiayn.train.trainer import Trainer

    task_config = task_config or ClassifyConfig()
    out_dir = check_start(  # fail before reading data
        out_dir, resume, model_config, EncoderOnlyConfig,
        "a classifier needs an encoder-only model config (a preset such as bert-tiny, "
        "bert-mini, bert-small, bert-base)", higher_is_better, train_config.best_metric,
    )  # fmt: skip
    if init is not None:
        require_arch(init, "encoder_only")
    columns = (task_config.text_column, task_config.pair_column, task_config.label_column)
    train_data, valid_data = read_labelled(train, *columns), read_labelled(valid, *columns)
    labels = load_labels(out_dir) if resume else LabelSet.from_labels(train_data)
    train_ids, valid_ids = labels.ids(train_data), labels.ids(valid_data)

    pretrained = None
    if resume:
        tokenizer = load_bert_tokenizer(out_dir)
        model_config = EncoderOnlyConfig.load(out_dir / "config.json")
    elif init is not None:
        tokenizer = load_bert_tokenizer(init)
        pretrained = load_pretrained(init)
        layer = {k: getattr(model_config.layer, k)
                 for k in ("dropout", "attention_dropout", "activation_dropout")}  # fmt: skip
        model_config = pretrained.config.replace(
            num_labels=len(labels), pooling=model_config.pooling, **layer
        )
    else:
        texts = train_data.texts + (train_data.pairs or [])
        tokenizer = train_bert_tokenizer_on_texts(
            texts, vocab_size=task_config.vocab_size, lowercase=task_config.lowercase
        )
        model_config = model_config.replace(
            vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id, num_labels=len(labels)
        )
    max_len = min(task_config.max_len, model_config.max_len)
    train_examples = Examples.encode(tokenizer, train_data.texts, train_data.pairs, train_ids,
                                     max_len)  # fmt: skip
    valid_examples = Examples.encode(tokenizer, valid_data.texts, valid_data.pairs, valid_ids,
                                     max_len)  # fmt: skip

    torch.manual_seed(train_config.seed)  # the same initial head for the same seed
    model = EncoderOnly(model_config)
    if pretrained is not None:  # everything but the new pooler and classifier
        missing, unexpected = model.load_state_dict(pretrained.state_dict(), strict=False)
        fresh = {n for n in missing if not n.startswith(("pooler.", "classifier."))}
        if fresh or unexpected:
            raise ConfigError(f"{init}: its weights do not fit an encoder-only classifier")
    task = ClassifyTask(model, train_examples, valid_examples, tokenizer, labels, task_config,
                        seed=train_config.seed)  # fmt: skip
    trainer = Trainer(
        model, task, train_config, out_dir, progress=progress, d_model=model_config.d_model
    )
    record = {**task_config.to_dict(), "init": None if init is None else str(init)}
    write_run_files(out_dir, resume, tokenizer, model_config, record, trainer.dist.is_main)
    if trainer.dist.is_main and not resume:
        save_labels(labels, out_dir)
    log.info(
        "classifier: %.2fM parameters, %d classes (%s); %d training and %d validation "
        "examples of <= %d tokens; %s",
        model.num_parameters() / 1e6, len(labels), ", ".join(labels.names), len(train_examples),
        len(valid_examples), max_len, f"encoder from {init}" if init else "from scratch",
    )  # fmt: skip
    return trainer.fit(resume=resume)


__all__ = ["train_classify"]
