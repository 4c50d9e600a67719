"""Classify texts and text pairs with a fine-tuned encoder: `aiayn.classify(model_dir, texts)`;
images with a vision model: `aiayn.classify_images(model_dir, paths)`.

    aiayn.classify("runs/sst2", ["a gripping film", "two hours I will not get back"])
    # → [Prediction(label="1", probs={"0": 0.03, "1": 0.97}), …]
    aiayn.classify("runs/filter", english, pairs=german)  # sentence pairs
    aiayn.classify_images("runs/digits", ["three.png", "seven.png"])
    explain_images("runs/digits", ["three.png"], "rollout/")  # attention rollout PNGs

Outputs follow the inputs' order (batches are formed by length inside, for little padding);
an empty text is classified as [CLS] [SEP], like any other. An image is resized to the
model's size and normalised as in training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aiayn.data.image_transforms import Normalization
from aiayn.data.labelled import LABELS_FILE, LabelSet, load_labels
from aiayn.errors import ConfigError
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.vision import VisionTransformer
from aiayn.tasks.classify.task import Examples
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
    labels = _read_labels(home, model_dir)
    model = load_pretrained(model_dir, device)
    _check_labels(model.config.num_labels, labels, home)
    return model, load_bert_tokenizer(home), labels


def _read_labels(home: Path, model_dir: str | os.PathLike) -> LabelSet:
    if not (Path(home) / LABELS_FILE).is_file():
        raise ConfigError(
            f"{model_dir}: no {LABELS_FILE}; is this a classifier? (a pretrained encoder "
            "needs fine-tuning first: aiayn train classify --init DIR)"
        )
    return load_labels(home)


def _check_labels(num_labels: int, labels: LabelSet, home: Path) -> None:
    if num_labels != len(labels):
        raise ConfigError(
            f"{Path(home) / LABELS_FILE} names {len(labels)} labels but the model has "
            f"{num_labels} classes; restore the file that came with the model"
        )


def load_image_classifier(
    model_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[VisionTransformer, Normalization, LabelSet]:
    """The image classifier, its preprocessing and its labels in a model directory (or a run's
    checkpoint directory). ConfigError when it is no vision model or lacks its files."""
    from aiayn.models.serialization import load_pretrained, require_arch

    home = require_arch(model_dir, "vision")
    labels = _read_labels(home, model_dir)
    normalization = Normalization.load(home)
    model = load_pretrained(model_dir, device)
    _check_labels(model.config.num_labels, labels, home)
    return model, normalization, labels


def _load_images(paths: Sequence[str | os.PathLike], size: int, channels: int) -> torch.Tensor:
    """Shape: -> (N, C, size, size) uint8. DataError naming a missing or unreadable file."""
    from aiayn.data.image_folder import load_image

    pixels = [torch.from_numpy(load_image(p, size, channels)) for p in paths]
    return (
        torch.stack(pixels) if pixels else torch.zeros(0, channels, size, size, dtype=torch.uint8)
    )


@torch.inference_mode()
def classify_images(
    model: str | os.PathLike | VisionTransformer,
    paths: Sequence[str | os.PathLike],
    *,
    normalization: Normalization | None = None,
    labels: LabelSet | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> list[Prediction]:
    """The prediction for each image file, in input order. `model`: a model directory, or a
    `VisionTransformer` with its `normalization=` and `labels=`.

    Raises:
        DataError: a missing or unreadable image (the file named).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size = {batch_size}: must be at least 1")
    if not isinstance(model, VisionTransformer):
        model, normalization, labels = load_image_classifier(model, device)
    elif normalization is None or labels is None:
        raise ConfigError("pass normalization= and labels= with a model object")
    model.eval()
    cfg = model.config
    images = _load_images(paths, normalization.image_size, cfg.channels)  # (N, C, S, S)
    device = next(model.parameters()).device
    probs = np.zeros((len(paths), len(labels)), dtype=np.float64)
    for start in range(0, len(paths), batch_size):
        batch = normalization(images[start : start + batch_size].to(device))  # (B, C, S, S)
        probs[start : start + batch_size] = model(batch).float().softmax(-1).cpu().numpy()
    return _predictions(probs, labels)


def explain_images(
    model: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """For each image, a PNG in `out_dir` (named after the image) of the image with its
    attention rollout laid over it and the predicted label; returns their paths.

    Raises:
        ConfigError: the model mixes tokens by pooling (no attention to roll out).
        DataError: a missing or unreadable image.
    """
    from aiayn.visualize.rollout import attention_rollout, plot_rollout

    vit, normalization, labels = load_image_classifier(model, device)
    if vit.config.mixer != "attention":
        raise ConfigError(f"{model}: a {vit.config.mixer} mixer has no attention to roll out")
    images = _load_images(paths, normalization.image_size, vit.config.channels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with torch.inference_mode():
        for i, path in enumerate(paths):
            image = images[i : i + 1].to(next(vit.parameters()).device)  # (1, C, S, S)
            hidden, weights = vit.encode(normalization(image), need_weights=True)
            probs = vit.classifier(vit.pool(hidden)).float().softmax(-1)[0]  # (K,)
            relevance = attention_rollout(weights, vit.prefix)[0]  # (g, g)
            label = labels.names[int(probs.argmax())]
            target = out_dir / f"{i:04d}_{Path(path).stem}.png"
            title = f"{Path(path).name}: {label} ({float(probs.max()):.0%})"
            written.append(plot_rollout(images[i], relevance, target, title))
    return written


def _predictions(probs: np.ndarray, labels: LabelSet) -> list[Prediction]:
    return [
        Prediction(
            labels.names[int(row.argmax())], dict(zip(labels.names, row.tolist(), strict=True))
        )
        for row in probs
    ]


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
    return _predictions(probs, labels)


__all__ = [
    "Prediction",
    "classify",
    "classify_images",
    "explain_images",
    "load_classifier",
    "load_image_classifier",
]
