"""What masked-LM pretraining buys: parallel-sentence filtering on Multi30k, pretrained vs
from-scratch fine-tuning at several amounts of labelled data (issue 27's experiment).

    python -m benchmarks.filtering --shared ../shared --out runs/filtering
    python -m benchmarks.filtering --shared ../shared --out /tmp/f --quick   # minutes, a check

1. data: pair TSVs (aiayn.data.pair_negatives: each caption's true German and a misaligned
   one, half hard near-misses) from train, val and test_2016_flickr;
2. pretraining: bert-mini, masked LM on the English and German training captions within
   --pretrain-tokens: by default each aligned pair one sequence (translation LM,
   recipes/bert_mini_tlm_multi30k.json); --recipe recipes/bert_mini_mlm_multi30k.json
   packs each language's captions on their own (monolingual MLM, BERT's);
3. fine-tuning: for each size in --sizes (labelled training rows, drawn at random; 0 = all),
   from the pretrained encoder and from scratch (its own WordPiece on the rows), at most
   --epochs epochs, cosine decay over exactly those steps; the best validation accuracy kept;
4. test: accuracy, macro F1 and MCC on the test_2016_flickr pairs, overall and on hard
   negatives; results.json and a plot (accuracy against labelled rows, both starts).

Runs already complete in --out are reused (a crash or a second session resumes there).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import time
from pathlib import Path

from aiayn.cli.train import _read_recipe
from aiayn.data.labelled import read_labelled
from aiayn.data.pair_negatives import make_pairs, to_tsv
from aiayn.models import presets
from aiayn.tasks.classify import ClassifyConfig, train_classify
from aiayn.tasks.mlm import MLMConfig, train_mlm
from aiayn.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TLM_RECIPE = REPO / "recipes" / "bert_mini_tlm_multi30k.json"
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


def write_data(shared: Path, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, name in SPLITS.items():
        lines = {}
        for lang in ("en", "de"):
            with gzip.open(shared / "data" / "multi30k" / f"{name}.{lang}.gz", "rt",
                           encoding="utf-8") as f:  # fmt: skip
                lines[lang] = f.read().splitlines()
            (out / f"{split}.{lang}").write_text("\n".join(lines[lang]) + "\n", encoding="utf-8")
        tsv = out / f"{split}.tsv"
        tsv.write_text(to_tsv(make_pairs(lines["en"], lines["de"], seed=len(split))), "utf-8")
        paths[split] = tsv
    return paths


def subset(tsv: Path, n: int, out: Path, seed: int = 0) -> Path:
    """`n` rows of `tsv` drawn at random (0: all of them)."""
    rows = tsv.read_text(encoding="utf-8").splitlines()
    header, body = rows[0], rows[1:]
    if n and n < len(body):
        body = random.Random(seed).sample(body, n)
    out.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    return out


def pretrain(data: Path, out: Path, tokens: float, quick: bool, recipe_path: Path) -> dict:
    recipe = _read_recipe(recipe_path)
    train = dict(recipe["train"])
    task = MLMConfig(**recipe["data"])
    per_step = 0.95 * task.max_tokens  # real tokens a step: sequences fill ~95% of the budget
    steps = max(int(tokens / per_step), 20)
    train.update(max_steps=steps, warmup_steps=max(steps * 6 // 100, 5),
                 valid_every=max(steps // 10, 10), device="cpu")  # fmt: skip
    train["adam_betas"] = tuple(train["adam_betas"])
    model = presets.get(recipe["preset"], **recipe.get("model", {}))
    if quick:
        model = model.replace(n_layers=2, d_model=128, n_heads=2, d_ff=512)
    done = _finished(out)
    resume = (out / "checkpoints").is_dir() and not done
    start = time.perf_counter()
    if not done:
        train_mlm([data / "train.en", data / "train.de"], out, model, TrainConfig(**train), task,
                  valid_text=[data / "val.en", data / "val.de"], resume=resume)  # fmt: skip
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["split"] == "valid"]
    return {"recipe": recipe_path.name, "steps": steps, "budget_tokens": tokens,
            "minutes": (time.perf_counter() - start) / 60,
            "last_valid": valid[-1] if valid else None}  # fmt: skip


def finetune(data: Path, paths: dict, n: int, init: Path | None, out: Path, epochs: int,
             quick: bool) -> dict:  # fmt: skip
    train_tsv = subset(paths["train"], n, data / f"train_{n or 'all'}.tsv")
    rows = len(train_tsv.read_text(encoding="utf-8").splitlines()) - 1
    batch = 32
    steps = epochs * math.ceil(rows / batch)
    model = presets.bert_mini(max_len=128, num_labels=2)
    if quick:
        model = model.replace(n_layers=2, d_model=128, n_heads=2, d_ff=512)
    config = TrainConfig(
        schedule="cosine", peak_lr=1e-4 if init else 5e-4, min_lr=0.0,
        warmup_steps=max(steps // 10, 1), weight_decay=0.01, clip_norm=1.0, max_steps=steps,
        precision="auto", valid_every=max(steps // (2 * epochs), 1), best_metric="accuracy",
        keep_last=1, log_every=50, device="cpu", seed=1,
    )  # fmt: skip
    task = ClassifyConfig(text_column="sentence1", pair_column="sentence2", batch_size=batch,
                          max_len=128)  # fmt: skip
    start = time.perf_counter()
    if not _finished(out):
        train_classify(train_tsv, paths["val"], out, model, config, task, init=init,
                       resume=(out / "checkpoints").is_dir(), progress=False)  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    return {"rows": rows, "epochs": epochs, "steps": steps, "minutes": minutes,
            **score(out, paths["test"])}  # fmt: skip


def _finished(run: Path) -> bool:
    """Whether the run in `run` ended (its log's last record), not merely exported a best."""
    log = run / "metrics.jsonl"
    if not log.is_file():
        return False
    lines = log.read_text(encoding="utf-8").splitlines()
    return bool(lines) and json.loads(lines[-1]).get("split") == "end"


def score(model_dir: Path, tsv: Path) -> dict:
    from aiayn.classifier import classify
    from aiayn.evaluate.classification import classification_scores

    data = read_labelled(tsv, "sentence1", "sentence2", "label")
    kinds = read_labelled(tsv, "sentence1", "sentence2", "kind").labels
    predictions = classify(model_dir, data.texts, data.pairs)
    names = ["not", "translation"]
    gold = [names.index(x) for x in data.labels]
    predicted = [names.index(p.label) for p in predictions]
    out = classification_scores(gold, predicted, 2)
    for kind in ("hard", "random", "true"):
        pick = [i for i, k in enumerate(kinds) if k == kind]
        out[f"accuracy_{kind}"] = sum(gold[i] == predicted[i] for i in pick) / max(len(pick), 1)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for start, style in (("pretrained", "o-"), ("scratch", "s--")):
        runs = sorted(results["finetune"][start].values(), key=lambda r: r["rows"])
        ax.plot([r["rows"] for r in runs], [100 * r["accuracy"] for r in runs], style,
                label=f"{start} bert-mini")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("labelled training pairs")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Multi30k pair filtering: what masked-LM pretraining buys")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pretrain-tokens", type=float, default=20e6)
    p.add_argument("--recipe", type=Path, default=TLM_RECIPE, help="the pretraining recipe")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--all-epochs", type=int, default=None,
                   help="epochs of the all-rows runs (default: --epochs)")  # fmt: skip
    p.add_argument("--plot", type=Path, default=None, help="write the plot here")
    p.add_argument("--quick", action="store_true", help="a small model and budget: a check")
    args = p.parse_args()
    if args.quick:
        args.pretrain_tokens = min(args.pretrain_tokens, 2e5)
    paths = write_data(args.shared, args.out / "data")
    results = {"pretrain": pretrain(args.out / "data", args.out / "bert", args.pretrain_tokens,
                                    args.quick, args.recipe),
               "finetune": {"pretrained": {}, "scratch": {}}}  # fmt: skip
    for n in args.sizes:
        for start, init in (("pretrained", args.out / "bert"), ("scratch", None)):
            run = args.out / f"{start}_{n or 'all'}"
            epochs = args.epochs if n or args.all_epochs is None else args.all_epochs
            results["finetune"][start][str(n)] = finetune(
                args.out / "data", paths, n, init, run, epochs, args.quick
            )
            print(start, n or "all", json.dumps(results["finetune"][start][str(n)]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.plot or args.out / "filtering.png")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
