"""Classification metrics from predicted and gold class ids: accuracy, macro F1 and the
Matthews correlation coefficient (GLUE reports MCC for CoLA, F1 for MRPC/QQP, accuracy for the
rest). Written out from their definitions over the confusion matrix; no sklearn needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts C[g, p] of examples of class g predicted as p. Shape: -> (K, K) int64."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def macro_f1(matrix: np.ndarray) -> float:
    """The unweighted mean over classes of F1 = 2·TP / (2·TP + FP + FN); a class never gold
    nor predicted has no F1 and is left out of the mean (sklearn counts it as 0, with a
    warning)."""
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    denominator = 2 * tp + fp + fn
    present = denominator > 0
    if not present.any():
        return 0.0
    return float(np.mean(2 * tp[present] / denominator[present]))


def matthews_corrcoef(matrix: np.ndarray) -> float:
    """Gorodkin's multi-class MCC (R_K): 1 perfect, 0 no better than chance, -1 inverse;
    the two-class MCC for K = 2. 0 where it is undefined (all predictions, or all gold
    labels, one class)."""
    c = float(np.trace(matrix))
    s = float(matrix.sum())
    p = matrix.sum(axis=0).astype(np.float64)  # predicted per class
    t = matrix.sum(axis=1).astype(np.float64)  # gold per class
    numerator = c * s - float(p @ t)
    denominator = math.sqrt(s * s - float(p @ p)) * math.sqrt(s * s - float(t @ t))
    return numerator / denominator if denominator else 0.0


def classification_scores(
    gold: Sequence[int], predicted: Sequence[int], n_classes: int
) -> dict[str, float]:
    """accuracy, macro_f1 and mcc of `predicted` against `gold` (class ids < n_classes)."""
    matrix = confusion_matrix(gold, predicted, n_classes)
    return {
        "accuracy": accuracy(matrix),
        "macro_f1": macro_f1(matrix),
        "mcc": matthews_corrcoef(matrix),
    }


__all__ = [
    "accuracy",
    "classification_scores",
    "confusion_matrix",
    "macro_f1",
    "matthews_corrcoef",
]
