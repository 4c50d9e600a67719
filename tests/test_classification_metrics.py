"""Classification metrics against hand counts and their defining properties."""

import math
import random

import pytest

from aiayn.evaluate.classification import classification_scores


def test_a_hand_counted_binary_case():
    gold = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]  # TP 3, FN 1, FP 1, TN 5
    s = classification_scores(gold, pred, 2)
    assert s["accuracy"] == pytest.approx(0.8)
    f1_pos, f1_neg = 2 * 3 / (2 * 3 + 1 + 1), 2 * 5 / (2 * 5 + 1 + 1)
    assert s["macro_f1"] == pytest.approx((f1_pos + f1_neg) / 2)
    mcc = (3 * 5 - 1 * 1) / math.sqrt((3 + 1) * (3 + 1) * (5 + 1) * (5 + 1))
    assert s["mcc"] == pytest.approx(mcc)


def test_perfect_inverse_and_constant_predictions():
    gold = [0, 1, 2, 0, 1, 2]
    perfect = classification_scores(gold, gold, 3)
    assert perfect == pytest.approx({"accuracy": 1.0, "macro_f1": 1.0, "mcc": 1.0})
    assert classification_scores([0, 1, 0, 1], [1, 0, 1, 0], 2)["mcc"] == pytest.approx(-1.0)
    constant = classification_scores(gold, [0] * 6, 3)
    assert constant["mcc"] == 0.0 and constant["accuracy"] == pytest.approx(1 / 3)


def test_chance_predictions_have_mcc_near_zero():
    rng = random.Random(0)
    gold = [rng.randrange(4) for _ in range(20000)]
    pred = [rng.randrange(4) for _ in range(20000)]
    s = classification_scores(gold, pred, 4)
    assert abs(s["mcc"]) < 0.02 and abs(s["accuracy"] - 0.25) < 0.01


def test_multiclass_mcc_against_the_covariance_form():
    # R_K = cov(X, Y) / sqrt(cov(X, X) cov(Y, Y)) over one-hot indicator matrices
    rng = random.Random(1)
    gold = [rng.randrange(3) for _ in range(300)]
    pred = [g if rng.random() < 0.6 else rng.randrange(3) for g in gold]

    def onehot(ids):
        return [[1.0 if i == k else 0.0 for k in range(3)] for i in ids]

    x, y = onehot(gold), onehot(pred)
    n = len(x)
    mean = lambda m, k: sum(row[k] for row in m) / n  # noqa: E731

    def cov(a, b):
        return sum(
            (a[i][k] - mean(a, k)) * (b[i][k] - mean(b, k)) for i in range(n) for k in range(3)
        )

    expected = cov(x, y) / math.sqrt(cov(x, x) * cov(y, y))
    assert classification_scores(gold, pred, 3)["mcc"] == pytest.approx(expected)
