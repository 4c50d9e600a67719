"""Classify texts and text pairs with a fine-tuned encoder: `aiayn.classify(model_dir, texts)`.

    aiayn.classify("runs/sst2", ["a gripping film", "two hours I will not get back"])
    # → [Prediction(label="1", probs={"0": 0.03, "1": 0.97}), …]
    aiayn.classify("runs/filter", english, pairs=german)  # sentence pairs

Outputs follow the inputs' order (batches are formed by length inside, for little padding);
an empty text is classified as [CLS] [SEP], like any other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aiayn.data.labelled import LabelSet
from aiayn.errors import ConfigError
from aiayn.models.encoder_only import EncoderOnly
from aiayn.tasks.classify.task import LABELS_FILE, Examples
from aiayn.tokenizers.bert import BertTokenizer, load_bert_tokenizer


@dataclass(frozen=True)
class Prediction:
    """The most probable label and every label's probability."""

    label: str
    probs: dict[str, float]


def load_classifier(
    model_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[EncoderOnly, BertTokenizer, LabelSet]:
    """The classifier, its tokenizer and its labels in a model directory (or a run's
    checkpoint directory).

    Raises:
        ConfigError: no such directory, a model that is not an encoder-only classifier, or
            no labels.json.
    """
    from aiayn.models.serialization import load_pretrained, require_arch

    home = require_arch(model_dir, "encoder_only")
    path = Path(home) / LABELS_FILE
    if not path.is_file():
        raise ConfigError(
            f"{model_dir}: no {LABELS_FILE}; is this a classifier? (a pretrained encoder "
            "needs fine-tuning first: aiayn train classify --init DIR)"
        )
    try:
        labels = LabelSet.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not JSON ({err}); restore the file") from None
    model = load_pretrained(model_dir, device)
    if model.config.num_labels != len(labels):
        raise ConfigError(
            f"{path} names {len(labels)} labels but the model has {model.config.num_labels} "
            "classes; restore the file that came with the model"
        )
    return model, load_bert_tokenizer(home), labels


@torch.inference_mode()
def classify(
    model: str | os.PathLike | EncoderOnly,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    tokenizer: BertTokenizer | None = None,
    labels: LabelSet | None = None,
    max_len: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> list[Prediction]:
    """The prediction for each text (or text pair), in input order.

    `model`: a model directory, or a model with its `tokenizer=` and `labels=`. `max_len`:
    tokens per example (longer ones are cut, the longer text of a pair first); default the
    model's max_len.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size = {batch_size}: must be at least 1")
    if pairs is not None and len(pairs) != len(texts):
        raise ConfigError(f"{len(texts)} texts but {len(pairs)} pairs: give one pair per text")
    if not isinstance(model, EncoderOnly):
        model, tokenizer, labels = load_classifier(model, device)
    elif tokenizer is None or labels is None:
        raise ConfigError("pass tokenizer= and labels= with a model object")
    model.eval()
    max_len = min(max_len or model.config.max_len, model.config.max_len)
    examples = Examples.encode(tokenizer, list(texts), None if pairs is None else list(pairs),
                               [0] * len(texts), max_len)  # fmt: skip
    device = next(model.parameters()).device
    probs = np.zeros((len(texts), len(labels)), dtype=np.float64)
    for chunk in examples.plan(batch_size):  # batches of similar length: little padding
        ids, segments, _ = (t.to(device) for t in examples.batch(chunk, tokenizer.pad_id))
        probs[chunk] = model.classify(ids, segments).float().softmax(dim=-1).cpu().numpy()
    return [
        Prediction(
            labels.names[int(row.argmax())], dict(zip(labels.names, row.tolist(), strict=True))
        )
        for row in probs
    ]


__all__ = ["Prediction", "classify", "load_classifier"]
