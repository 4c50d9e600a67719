"""`train_translation`: everything `aiayn train` does, as one function a notebook can call."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from aiayn.config import ModelConfig
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tasks.translation.data import DataOptions, prepare_data
from aiayn.tasks.translation.task import TranslationTask
from aiayn.tokenizers import TokenizerPair
from aiayn.train.checkpoint import check_run_dir
from aiayn.train.config import TrainConfig
from aiayn.train.trainer import Trainer, TrainResult

log = logging.getLogger(__name__)


def train_translation(
    train_src: str | Path,
    train_tgt: str | Path,
    valid_src: str | Path,
    valid_tgt: str | Path,
    out_dir: str | Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    data_options: DataOptions | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> TrainResult:
    """Everything `aiayn train` does: tokenizer, data, model, Trainer. Returns the TrainResult.

    `model_config` may leave the vocabulary sizes to the tokenizer: they are set from it.
    On `resume`, the tokenizer and model config saved in `out_dir` are reused.
    """
    data_options = data_options or DataOptions()
    out_dir = Path(out_dir)
    check_run_dir(out_dir, resume)  # fail before spending minutes on data
    tokenizers = None
    if resume:
        tokenizers = TokenizerPair.load(out_dir)
        model_config = ModelConfig.load(out_dir / "config.json")
    data = prepare_data(
        train_src,
        train_tgt,
        valid_src,
        valid_tgt,
        tokenizers=tokenizers,
        vocab_size=data_options.vocab_size,
        joint=data_options.joint,
        kind=data_options.tokenizer,
        max_len=data_options.max_len,
        lowercase=data_options.lowercase,
    )
    if not resume:
        sizes = {
            "src_vocab_size": data.tokenizers.source.vocab_size,
            "tgt_vocab_size": data.tokenizers.target.vocab_size,
        }
        if not data.tokenizers.is_shared and model_config.tie_embeddings == "all":
            sizes["tie_embeddings"] = "decoder"
        model_config = model_config.replace(**sizes)
    torch.manual_seed(train_config.seed)  # the same initial weights for the same seed
    model = EncoderDecoder(model_config)
    task = TranslationTask(
        model,
        data,
        max_tokens=train_config.max_tokens,
        max_sentences=train_config.max_sentences,
        label_smoothing=train_config.label_smoothing,
        r_drop=train_config.r_drop,
        r_drop_start_step=train_config.r_drop_start_step,
        r_drop_start_minutes=train_config.r_drop_start_minutes,
        token_dropout=train_config.token_dropout,
        bpe_dropout=train_config.bpe_dropout,
        bidirectional_epochs=train_config.bidirectional_epochs,
        seed=train_config.seed,
        valid_beam=data_options.valid_beam,
        valid_bleu_sentences=data_options.valid_bleu_sentences,
    )
    trainer = Trainer(model, task, train_config, out_dir, progress=progress)
    if not resume and trainer.dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        data.tokenizers.save(out_dir)
        model_config.save(out_dir / "config.json")
    log.info(
        "model: %.2fM parameters; %d training pairs (%s)",
        model.num_parameters() / 1e6, len(data.train), data.train_stats,
    )  # fmt: skip
    return trainer.fit(resume=resume)
