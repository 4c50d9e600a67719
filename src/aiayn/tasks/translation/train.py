"""`train_translation`: everything `aiayn train translation` does, as one function a notebook can
call. Its heavy imports (torch, the model, the Trainer) wait for the call, so that the command
line can name it in its task table without loading them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiayn.tasks.translation.config import TranslationConfig, higher_is_better

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiayn.config import ModelConfig
    from aiayn.models.encoder_decoder import EncoderDecoder
    from aiayn.train.config import TrainConfig
    from aiayn.train.trainer import TrainResult

log = logging.getLogger(__name__)


def train_translation(
    train_src: str | Path,
    train_tgt: str | Path,
    valid_src: str | Path,
    valid_tgt: str | Path,
    out_dir: str | Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    task_config: TranslationConfig | None = None,
    resume: bool = False,
    progress: bool | None = None,
    alter: Callable[[EncoderDecoder], None] | None = None,
) -> TrainResult:
    """Everything `aiayn train` does: tokenizer, data, model, Trainer. Returns the TrainResult.

    `model_config` may leave the vocabulary sizes to the tokenizer: they are set from it.
    On `resume`, the tokenizer and model config saved in `out_dir` are reused. The run
    directory also gets `task_config.json` (beside the Trainer's `train_config.json`).
    `alter`, when given, changes the freshly built model in place before training (the "why"
    experiments: tie W_Q to W_K, swap an attention); the saved config does not record it.
    """
    import torch

    from aiayn.config import ModelConfig
    from aiayn.models.encoder_decoder import EncoderDecoder
    from aiayn.tasks.run_dir import check_start, write_run_files
    from aiayn.tasks.translation.data import prepare_data
    from aiayn.tasks.translation.task import TranslationTask
    from aiayn.tokenizers import TokenizerPair
    from aiayn.train.trainer import Trainer

    task_config = task_config or TranslationConfig()
    out_dir = check_start(  # fail before spending minutes on data
        out_dir, resume, model_config, ModelConfig,
        "translation needs an encoder-decoder model config (a preset such as tiny, small, "
        "base, big)", higher_is_better, train_config.best_metric,
    )  # fmt: skip
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
        vocab_size=task_config.vocab_size,
        joint=task_config.joint,
        kind=task_config.tokenizer,
        max_len=task_config.max_len,
        lowercase=task_config.lowercase,
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
    if alter is not None:
        alter(model)
    task = TranslationTask(model, data, task_config, seed=train_config.seed)
    trainer = Trainer(
        model, task, train_config, out_dir, progress=progress, d_model=model_config.d_model
    )
    write_run_files(out_dir, resume, data.tokenizers, model_config, task_config.to_dict(),
                    trainer.dist.is_main)  # fmt: skip
    log.info(
        "model: %.2fM parameters; %d training pairs (%s)",
        model.num_parameters() / 1e6, len(data.train), data.train_stats,
    )  # fmt: skip
    return trainer.fit(resume=resume)
