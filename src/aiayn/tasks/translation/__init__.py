"""Machine translation: parallel text + tokenizers + EncoderDecoder + loss + BLEU, wired together.

    data = prepare_data(train_src, train_tgt, valid_src, valid_tgt, vocab_size=8000)
    model = EncoderDecoder(presets.small(data.tokenizers.source.vocab_size))
    task = TranslationTask(model, data, max_tokens=4096)
    Trainer(model, task, TrainConfig(...), out_dir).fit()

or, all of it as `aiayn train` does it, `train_translation(...)`.

- `data`: reading, tokenizer training, encoding and length filtering (`prepare_data`);
- `task`: `TranslationTask`, what the Trainer calls: batches, loss, validation, export;
- `train`: `train_translation`, data + model + task + Trainer for one run directory.
"""

from aiayn.tasks.translation.data import (
    DataOptions,
    IdPair,
    TranslationData,
    encode_pairs,
    prepare_data,
    train_tokenizers,
)
from aiayn.tasks.translation.task import TranslationTask
from aiayn.tasks.translation.train import train_translation

__all__ = [
    "DataOptions",
    "IdPair",
    "TranslationData",
    "TranslationTask",
    "encode_pairs",
    "prepare_data",
    "train_tokenizers",
    "train_translation",
]
