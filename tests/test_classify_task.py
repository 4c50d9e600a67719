"""Fine-tuning a classifier, as a user does it: pretrain (masked LM) → fine-tune on labelled
pairs from GLUE-style TSV → classify → score; labels saved with the model; from scratch too."""

from __future__ import annotations

import csv
import json
import random

import pytest

from aiayn.classifier import classify
from aiayn.cli import main
from aiayn.data.number_words import make_splits, write_splits
from aiayn.errors import DataError
from aiayn.models import presets
from aiayn.tasks.classify import ClassifyConfig, train_classify
from aiayn.tasks.mlm import MLMConfig, train_mlm
from aiayn.train.config import TrainConfig

TINY = dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, max_len=48)


def write_pairs(path, en: list[str], de: list[str], seed: int) -> None:
    """A GLUE-style TSV of (English, German, label): each English number with a German one,
    its translation or another row's, labelled by the second text alone ("thousands" when the
    German number has "tausend"), a task a tiny model learns in a few dozen steps."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["sentence1", "sentence2", "label"])
        pools = [[s for s in de if "tausend" in s], [s for s in de if "tausend" not in s]]
        for sentence in en:
            german = rng.choice(pools[rng.random() < 0.5])  # balanced classes
            w.writerow([sentence, german, "thousands" if "tausend" in german else "small"])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("numbers")
    write_splits(make_splits(600, 60, 60, seed=11), out)
    for split, seed in (("train", 1), ("valid", 2), ("test", 3)):
        en = (out / f"{split}.en").read_text().splitlines()
        de = (out / f"{split}.de").read_text().splitlines()
        write_pairs(out / f"{split}.tsv", en, de, seed)
    return out


def config(**overrides) -> TrainConfig:
    fields = dict(schedule="inverse_sqrt", peak_lr=3e-3, warmup_steps=5, max_steps=30,
                  valid_every=10, log_every=5, device="cpu", seed=2)  # fmt: skip
    return TrainConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bert") / "mlm"
    train_mlm([data / "train.en", data / "train.de"], out, presets.bert_tiny(**TINY),
              config(), MLMConfig(vocab_size=300, context=48, max_tokens=1024),
              progress=False)  # fmt: skip
    return out


PAIRS = ClassifyConfig(text_column="sentence1", pair_column="sentence2", batch_size=16)


@pytest.fixture(scope="module")
def finetuned(data, pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier") / "model"
    train_config = config(max_steps=100, best_metric="accuracy")
    result = train_classify(data / "train.tsv", data / "valid.tsv", out, presets.bert_tiny(**TINY),
                            train_config, PAIRS, init=pretrained, progress=False)  # fmt: skip
    return out, result


def test_fine_tuning_learns_the_pair_task(finetuned):
    out, result = finetuned
    assert json.loads((out / "labels.json").read_text()) == {"labels": ["small", "thousands"]}
    assert result.best > 0.9  # validation accuracy; chance is 0.5


def test_classify_keeps_input_order_and_the_cli_agrees(finetuned, data, capsys):
    out, _ = finetuned
    with open(data / "test.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    texts, pairs = [r["sentence1"] for r in rows], [r["sentence2"] for r in rows]
    predictions = classify(out, texts, pairs)
    assert len(predictions) == 60
    for p in predictions:
        assert set(p.probs) == {"small", "thousands"}
        assert abs(sum(p.probs.values()) - 1) < 1e-6 and p.label == max(p.probs, key=p.probs.get)
    alone = classify(out, texts[7:8], pairs[7:8])[0]
    assert alone.label == predictions[7].label
    assert abs(alone.probs["small"] - predictions[7].probs["small"]) < 1e-5
    args = ["classify", "--model", str(out), "--input", str(data / "test.tsv"),
            "--text-column", "sentence1", "--pair-column", "sentence2"]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == [p.label for p in predictions]
    assert main([*args, "--score"]) == 0
    scores = json.loads(capsys.readouterr().out)
    right = sum(p.label == r["label"] for p, r in zip(predictions, rows, strict=True))
    assert scores["examples"] == 60 and scores["accuracy"] == pytest.approx(right / 60)


def test_an_unknown_label_names_the_file_line_and_column(finetuned, data, tmp_path, capsys):
    out, _ = finetuned
    bad = tmp_path / "bad.tsv"
    lines = (data / "test.tsv").read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\tmaybe"
    bad.write_text("\n".join(lines) + "\n")
    args = ["classify", "--model", str(out), "--input", str(bad), "--text-column",
            "sentence1", "--pair-column", "sentence2", "--score"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "bad.tsv:4: label 'maybe' (column 'label')" in err and len(err.splitlines()) == 1


def test_from_scratch_and_a_validation_label_never_trained(data, tmp_path):
    result = train_classify(data / "train.tsv", data / "valid.tsv", tmp_path / "scratch",
                            presets.bert_tiny(**TINY), config(max_steps=4),
                            PAIRS.replace(vocab_size=300), progress=False)  # fmt: skip
    assert result.steps == 4
    assert (tmp_path / "scratch" / "tokenizer.json").is_file()
    odd = tmp_path / "odd.tsv"
    odd.write_text((data / "valid.tsv").read_text().replace("\tsmall\n", "\tneither\n", 1))
    with pytest.raises(DataError, match=r"odd\.tsv:\d+: label 'neither'"):
        train_classify(data / "train.tsv", odd, tmp_path / "x", presets.bert_tiny(**TINY),
                       config(max_steps=2), PAIRS, progress=False)  # fmt: skip


def test_filter_keeps_aligned_pairs_in_order(finetuned, data, tmp_path, capsys):
    out, _ = finetuned
    with open(data / "test.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    (tmp_path / "src").write_text("".join(r["sentence1"] + "\n" for r in rows))
    (tmp_path / "tgt").write_text("".join(r["sentence2"] + "\n" for r in rows))
    args = ["filter", "--model", str(out), "--src", str(tmp_path / "src"), "--tgt",
            str(tmp_path / "tgt"), "--out-src", str(tmp_path / "kept.src"), "--out-tgt",
            str(tmp_path / "kept.tgt"), "--keep-label", "thousands",
            "--scores", str(tmp_path / "scores")]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    scores = [float(x) for x in (tmp_path / "scores").read_text().split()]
    expected = [i for i, s in enumerate(scores) if s >= 0.5]
    kept_src = (tmp_path / "kept.src").read_text().splitlines()
    kept_tgt = (tmp_path / "kept.tgt").read_text().splitlines()
    assert summary == {"pairs": 60, "kept": len(expected), "threshold": 0.5}
    assert kept_src == [rows[i]["sentence1"] for i in expected]  # aligned, in input order
    assert kept_tgt == [rows[i]["sentence2"] for i in expected]
    # mostly the label asked for: half the input is, and 28 or more of 40 kept by chance has
    # probability < 0.01 (a 100-step model: its exact precision moves with the seed's draws)
    assert sum("tausend" in t for t in kept_tgt) >= 0.7 * len(kept_tgt)
    assert main([*args[:-2], "--keep-label", "maybe"]) == 2
    assert "'maybe' is not one of the model's labels" in capsys.readouterr().err


def test_the_command_line_from_text_to_scores(data, tmp_path, capsys):
    """As a user runs it: aiayn train mlm → aiayn train classify --init → aiayn classify."""

    def aiayn(*args) -> int:
        return main([str(a) for a in args])

    common = ["--preset", "bert-tiny", "--max-len", "48", "--max-steps", "3", "--valid-every",
              "3", "--warmup-steps", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    pairs = ["--text-column", "sentence1", "--pair-column", "sentence2"]
    tables = ["--train", data / "train.tsv", "--valid", data / "valid.tsv"]
    bert, clf = tmp_path / "bert", tmp_path / "clf"
    assert aiayn("train", "mlm", "--train-text", data / "train.en", data / "train.de", "--out",
                 bert, "--vocab-size", "300", "--context", "48", *common) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["steps"] == 3 and set(summary["last_valid"]) == {"loss", "ppl", "accuracy"}
    assert aiayn("train", "classify", *tables, "--init", bert, "--out", clf, *pairs, *common) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(summary["last_valid"]) == {"loss", "accuracy", "macro_f1", "mcc"}
    assert aiayn("classify", "--model", clf, "--input", data / "test.tsv", *pairs, "--probs") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "label\tsmall\tthousands" and len(lines) == 61
    assert aiayn("train", "classify", *tables, "--out", tmp_path / "x", *common) == 2
    assert "column 'sentence'" in capsys.readouterr().err  # the default column is not there


@pytest.mark.parametrize(
    ("recipe", "task", "inputs"),
    [("bert_mini_mlm_multi30k.json", "mlm", ["--train-text", "a"]),
     ("bert_mini_tlm_multi30k.json", "mlm", ["--train-text", "a", "b"]),
     ("bert_filter_classify.json", "classify", ["--train", "a", "--valid", "b"])],
)  # fmt: skip
def test_the_bert_recipes_build_with_every_field_in_effect(recipe, task, inputs, tmp_path):
    from pathlib import Path

    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs

    path = Path(__file__).parents[1] / "recipes" / recipe
    args = ["train", task, *inputs, "--out", str(tmp_path), "--config", str(path)]
    model, train, task_config = build_configs(build_parser().parse_args(args))
    sections = json.loads(path.read_text())
    assert model.arch == "encoder_only"
    for field, value in sections.get("model", {}).items():
        assert getattr(model, field) == value, field
    for field, value in sections["train"].items():
        kept = getattr(train, field)
        assert (list(kept) if isinstance(kept, tuple) else kept) == value, field
    for field, value in sections["data"].items():
        assert getattr(task_config, field) == value, field
