"""Training runs on Multi30k En→De at small scale, shared by the experiments that compare model
variants on real translation (the paper's Table 3, small: `experiments.table3`).

Every run gets the same budget in optimiser steps of `max_tokens` tokens (not minutes: the CPU
differs from machine to machine), the same joint BPE vocabulary, cosine schedule and seed; a
bigger variant costs more time per step, as the paper's bigger rows did at 100k steps. The
figures are the validation set's (val 2016, 1,014 sentences): greedy BLEU (sacreBLEU) and
per-token perplexity of the reference (exp of the unsmoothed NLL), as the paper's Table 3
reports newstest2013 BLEU and per-wordpiece perplexity.

The data is Multi30k task 1 (`aiayn data multi30k --out DIR` downloads it); the experiments look
in `../shared/data/multi30k` unless told `--data`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from aiayn.config import ModelConfig
from aiayn.errors import AiaynError
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.train.config import TrainConfig
from aiayn.visualize.curves import read_metrics

DEFAULT_DATA = Path("..") / "shared" / "data" / "multi30k"
FILES = ("train.en.gz", "train.de.gz", "val.en.gz", "val.de.gz")


def check_data(data: Path) -> Path:
    """`data` if it holds Multi30k's four files, else an error saying how to get them."""
    missing = [name for name in FILES if not (data / name).is_file()]
    if missing:
        raise AiaynError(
            f"{data}: missing {', '.join(missing)}; download Multi30k with "
            f"`aiayn data multi30k --out {data}` or pass --data DIR"
        )
    return data


def small_smoke_data(out: Path) -> Path:
    """A few hundred Multi30k-like lines (the smoke test's stand-in for the real files)."""
    import gzip

    out.mkdir(parents=True, exist_ok=True)
    animals = ["dog", "cat", "man", "woman", "child", "horse"]
    tiere = ["Hund", "Katze", "Mann", "Frau", "Kind", "Pferd"]
    verbs = [("runs", "rennt"), ("sits", "sitzt"), ("plays", "spielt")]
    en, de = [], []
    for i in range(240):
        a, (v, w) = i % len(animals), verbs[i % len(verbs)]
        en.append(f"a {animals[a]} {v} on the grass .")
        de.append(f"ein {tiere[a]} {w} auf dem Gras .")
    for split, rows in (("train", slice(0, 200)), ("val", slice(200, 240))):
        for lang, lines in (("en", en), ("de", de)):
            with gzip.open(out / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines[rows]) + "\n")
    return out


def train_multi30k(
    data: Path,
    out: Path,
    model: ModelConfig,
    steps: int,
    seed: int,
    task: dict[str, Any] | None = None,
    **train: Any,
) -> dict[str, Any]:
    """Train `model` on Multi30k for `steps` steps; the final validation figures, the curve
    and the wall time. `task` and `train` override the shared settings below."""
    fields = dict(
        schedule="cosine", peak_lr=1.5e-3, warmup_steps=max(steps // 8, 1), max_steps=steps,
        valid_every=max(steps // 4, 1), log_every=max(steps // 20, 1), keep_last=1,
        best_metric="bleu", clip_norm=1.0, weight_decay=0.1, precision="auto", seed=seed,
    )  # fmt: skip
    fields.update(train)
    task_fields = dict(vocab_size=8000, max_len=128, max_tokens=4096, valid_beam=1)
    task_fields.update(task or {})
    task_config = TranslationConfig(**task_fields)
    start = time.perf_counter()
    train_translation(
        data / FILES[0], data / FILES[1], data / FILES[2], data / FILES[3], out,
        model, TrainConfig(**fields), task_config, progress=False,
    )  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    valid = read_metrics(out / "metrics.jsonl", "valid")
    last = valid[-1]
    return {
        "bleu": round(last["bleu"], 2),
        "ppl": round(last["ppl"], 2),
        "curve": [{k: r[k] for k in ("step", "bleu", "ppl")} for r in valid],
        "minutes": round(minutes, 2),
        "model": dataclasses.asdict(model.layer) | {
            "n_layers": model.n_encoder_layers, "positional": model.positional
        },
    }  # fmt: skip
