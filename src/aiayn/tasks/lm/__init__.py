"""Language modelling: text files + LM tokenizer + DecoderOnly + next-token loss, wired together.

    config = LMConfig(tokenizer="char", batch_size=64)
    train_lm("input.txt", "runs/shakespeare", presets.baby_gpt(), TrainConfig(...), config)

or piece by piece: a tokenizer (`aiayn.tokenizers.train_lm_tokenizer`), token files
(`aiayn.data.token_file`), `LMTask(model, train_tokens, valid_tokens, tokenizer, config)` and
`Trainer(model, task, TrainConfig(...), out_dir, d_model=model.config.d_model).fit()`.

- `config`: `LMConfig`, the task's options, and the `METRICS` its validation reports;
- `task`: `LMTask`, what the Trainer calls: windows, loss, validation (loss, ppl, bpc), export;
- `train`: `train_lm`, tokenizer + token files + model + task + Trainer for one run directory.

The config and `train_lm` import without torch (the command line builds its flags from them);
`task` loads on first use of one of its names.
"""

from typing import Any

from aiayn.tasks.lm.config import METRICS, LMConfig
from aiayn.tasks.lm.train import train_lm

__all__ = ["METRICS", "LMConfig", "LMTask", "lm_loss", "train_lm"]


def __getattr__(name: str) -> Any:
    if name in ("LMTask", "lm_loss"):
        from aiayn.tasks.lm import task as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
