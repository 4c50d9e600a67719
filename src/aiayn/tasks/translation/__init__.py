"""Machine translation: parallel text + tokenizers + EncoderDecoder + loss + BLEU, wired together.

    config = TranslationConfig(vocab_size=8000, max_tokens=4096)
    data = prepare_data(train_src, train_tgt, valid_src, valid_tgt, vocab_size=config.vocab_size)
    model = EncoderDecoder(presets.small(data.tokenizers.source.vocab_size))
    task = TranslationTask(model, data, config)
    Trainer(model, task, TrainConfig(...), out_dir, d_model=model.config.d_model).fit()

or, all of it as `aiayn train translation` does it, `train_translation(...)`.

- `config`: `TranslationConfig`, the task's options, and the `METRICS` its validation reports;
- `data`: reading, tokenizer training, encoding and length filtering (`prepare_data`);
- `task`: `TranslationTask`, what the Trainer calls: batches, loss, validation, export;
- `train`: `train_translation`, data + model + task + Trainer for one run directory.

The config and `train_translation` import without torch (the command line builds its flags
from them); `data` and `task` load on first use of one of their names.
"""

from typing import Any

from aiayn.tasks.translation.config import METRICS, TranslationConfig
from aiayn.tasks.translation.train import train_translation

__all__ = [
    "METRICS",
    "IdPair",
    "TranslationConfig",
    "TranslationData",
    "TranslationTask",
    "encode_pairs",
    "prepare_data",
    "train_tokenizers",
    "train_translation",
]


def __getattr__(name: str) -> Any:
    if name in ("IdPair", "TranslationData", "encode_pairs", "prepare_data", "train_tokenizers"):
        from aiayn.tasks.translation import data as module
    elif name == "TranslationTask":
        from aiayn.tasks.translation import task as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
