"""The digits comparison: ViT, PoolFormer, a small CNN and an RBF-kernel SVM on scikit-learn's
8×8 handwritten digits, the same fixed split (1,347 train / 450 test, split seed 0).

    python -m benchmarks.digits --out runs/digits            # trains what is not trained yet
    python -m benchmarks.digits --out runs/digits --markdown # the table for docs/vision.md

- ViT and PoolFormer: `aiayn train image` with recipes/vit_digits.json and
  recipes/poolformer_digits.json (200 epochs, AdamW, warm-up + cosine, label smoothing 0.1,
  random shifts of ≤ 1 pixel); a run already in OUT/vit or OUT/poolformer is resumed (a
  finished one trains nothing). The test accuracy is the last checkpoint's, not the
  exported best one's: validation sees the test split.
- CNN: two 3×3 convolutions (32, 64 channels) with batch norm, a 2×2 max-pool, a linear
  layer; the same budget and recipe (200 epochs, batch 64, AdamW, warm-up + cosine, label
  smoothing, shifts).
- SVM: scikit-learn's SVC with an RBF kernel on the 64 pixels in [0, 1], C and γ chosen by
  5-fold cross-validation on the training split.

Reported per model: test accuracy, parameters (the SVM's: support vectors × 64 + dual
coefficients and intercepts), training time, and inference images/s on the 450 test images
(batch 450, fp32, this machine's threads).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {"ViT": "vit_digits.json", "PoolFormer": "poolformer_digits.json"}


def train_recipe(name: str, out: Path, progress: bool) -> dict:
    """Train (or resume) the recipe's run in `out`; test accuracy, parameters, time, speed."""
    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs
    from aiayn.tasks.image import train_image

    args = build_parser().parse_args(
        ["train", "image", "--config", str(ROOT / "recipes" / RECIPES[name]), "--out", str(out)]
    )
    model_cfg, train_cfg, task_cfg = build_configs(args)
    resume = (out / "checkpoints").is_dir()
    train_image(None, None, out, model_cfg, train_cfg, task_cfg, resume=resume, progress=progress)
    return evaluate_run(out)


def evaluate_run(out: Path) -> dict:
    """The run's LAST checkpoint on the test split. (The run's model.safetensors is its best
    checkpoint by validation loss, and validation reads the test split: choosing by it would
    let the test split pick the model.)"""
    from aiayn.classifier import load_image_classifier
    from aiayn.data.digits import load_digits_split
    from aiayn.train.checkpoint import list_checkpoints

    last = list_checkpoints(out / "checkpoints")[-1]
    model, normalization, _ = load_image_classifier(last.path)
    _, test = load_digits_split(0)
    images = normalization(test.images)
    accuracy, rate = _accuracy_and_rate(model, images, test.labels)
    end = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = max((r["seconds"] for r in end if r.get("split") == "end"), default=math.nan)
    return {"test_accuracy": accuracy, "params": model.num_parameters(), "step": last.step,
            "train_seconds": round(seconds, 1), "images_per_s": rate}  # fmt: skip


@torch.inference_mode()
def _accuracy_and_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    model.eval()
    predicted = model(images).argmax(-1)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        model(images)
        times.append(time.perf_counter() - start)
    return float((predicted == labels).float().mean()), round(len(images) / min(times), 1)


class SmallCNN(nn.Module):
    """conv3×3(32)-BN-ReLU → conv3×3(64)-BN-ReLU → maxpool 2 → linear: (B, 1, 8, 8) -> (B, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.1),
        )  # fmt: skip
        self.head = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def train_cnn(epochs: int = 200, batch: int = 64, seed: int = 1) -> dict:
    """The CNN on the recipes' budget: AdamW (lr 2e-3, decay 0.05), 200 warm-up steps then
    cosine, label smoothing 0.1, random shifts of ≤ 1 pixel."""
    from aiayn.data.digits import load_digits_split
    from aiayn.data.image_transforms import Normalization, random_shift
    from aiayn.data.shuffled_batches import ShuffledBatchSampler

    torch.manual_seed(seed)
    train, test = load_digits_split(0)
    norm = Normalization.of(train.images)
    model = SmallCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sampler = ShuffledBatchSampler(len(train), batch, seed=seed)
    total, warmup = epochs * len(sampler), 200
    step, start = 0, time.perf_counter()
    model.train()
    for _ in range(epochs):
        for indices in sampler:
            step += 1
            progress = max(step - warmup, 0) / (total - warmup)
            lr = 2e-3 * min(step / warmup, 0.5 * (1 + math.cos(math.pi * progress)))
            for g in opt.param_groups:
                g["lr"] = lr
            images = norm(random_shift(train.images[indices], 1))
            loss = F.cross_entropy(model(images), train.labels[indices], label_smoothing=0.1)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    accuracy, rate = _accuracy_and_rate(model, norm(test.images), test.labels)
    return {"test_accuracy": accuracy, "params": model.num_parameters(),
            "train_seconds": round(seconds, 1), "images_per_s": rate}  # fmt: skip


def train_svm() -> dict:
    """RBF SVC, C and γ by 5-fold CV on the training split."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    from aiayn.data.digits import digits_arrays

    x_train, y_train, x_test, y_test = digits_arrays(0)
    grid = {"C": [1, 3, 10, 30, 100], "gamma": [0.01, 0.03, 0.1, 0.3, "scale"]}
    start = time.perf_counter()
    search = GridSearchCV(SVC(kernel="rbf"), grid, cv=5, n_jobs=1).fit(x_train, y_train)
    seconds = time.perf_counter() - start
    best = search.best_estimator_
    accuracy = float((best.predict(x_test) == y_test).mean())
    times = []
    for _ in range(5):
        t = time.perf_counter()
        best.predict(x_test)
        times.append(time.perf_counter() - t)
    params = best.support_vectors_.size + best.dual_coef_.size + best.intercept_.size
    return {"test_accuracy": accuracy, "params": int(params), "train_seconds": round(seconds, 1),
            "images_per_s": round(len(x_test) / min(times), 1),
            "chosen": {k: search.best_params_[k] for k in ("C", "gamma")},
            "cv_accuracy": round(float(search.best_score_), 4)}  # fmt: skip


def markdown(results: dict) -> str:
    lines = ["| model | test accuracy | parameters | training time | images/s (inference) |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in results.items():
        note = f" (C={r['chosen']['C']}, γ={r['chosen']['gamma']})" if "chosen" in r else ""
        lines.append(f"| {name}{note} | {r['test_accuracy']:.2%} | {r['params']:,} | "
                     f"{r['train_seconds']:.0f} s | {r['images_per_s']:,.0f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.digits", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / "digits",
        help="where the ViT and PoolFormer runs go (OUT/vit, OUT/poolformer)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=["ViT", "PoolFormer", "CNN", "SVM"],
        default=["ViT", "PoolFormer", "CNN", "SVM"],
        help="models to run",
    )
    p.add_argument("--epochs", type=int, default=200, help="the CNN's epochs (the recipes': 200)")
    p.add_argument("--markdown", action="store_true", help="also print the table")
    args = p.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    results: dict = {}
    for name in args.only:
        if name in RECIPES:
            results[name] = train_recipe(name, args.out / name.lower(), progress=False)
        elif name == "CNN":
            results[name] = train_cnn(args.epochs)
        else:
            results["RBF SVM"] = train_svm()
        print(json.dumps({name: results.get(name, results.get("RBF SVM"))}), flush=True)
    print(json.dumps(results, indent=1))
    if args.markdown:
        print(markdown(results))
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
