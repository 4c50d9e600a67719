"""The image commands as a user runs them: train on a tiny ImageFolder made here, classify its
images (order kept, rollout PNGs), train a few steps on the embedded digits, and one-line
errors for bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from aiayn.cli import main

TINY_MODEL = {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_ff": 32}


def recipe(tmp_path, **data) -> str:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"preset": "vit-tiny", "model": TINY_MODEL,
                                "data": {"batch_size": 2, **data}}))  # fmt: skip
    return str(path)


TRAIN_FLAGS = ("--max-steps", "3", "--valid-every", "3", "--warmup-steps", "1",
               "--schedule", "constant", "--no-progress")  # fmt: skip


def make_folder(root, per_class=3):
    """Two classes a model can tell apart: bright and dark images, RGB, 12×12."""
    rng = np.random.default_rng(0)
    for name, level in (("bright", 220), ("dark", 30)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 10, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}{i}.png")
    return root


def one_line_error(capsys, argv, *parts):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aiayn {argv[0]}: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def test_train_on_an_image_folder_then_classify(tmp_path, capsys):
    train, valid = make_folder(tmp_path / "train"), make_folder(tmp_path / "valid", 1)
    out = tmp_path / "model"
    argv = ["train", "image", "--train", str(train), "--valid", str(valid), "--out", str(out),
            "--config", recipe(tmp_path, hflip=True), "--image-size", "8", "--patch-size", "4",
            *TRAIN_FLAGS]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 3 and "accuracy" in result["last_valid"]
    for name in ("config.json", "model.safetensors", "labels.json", "image_preprocessing.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["arch"] == "vision"

    images = [valid / "dark" / "dark0.png", valid / "bright" / "bright0.png", train / "dark" /
              "dark1.png"]  # fmt: skip
    rollout = tmp_path / "rollout"
    argv = ["classify", "--model", str(out), "--input", *map(str, images), "--probs",
            "--rollout", str(rollout)]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["label", "bright", "dark"]
    assert len(lines) == 4 and all(line.split("\t")[0] in ("bright", "dark") for line in lines[1:])
    assert len(list(rollout.glob("*.png"))) == 3
    assert sorted(p.name for p in rollout.glob("*.png"))[0].startswith("0000_dark0")

    # the same order whatever the batch size
    assert main(["classify", "--model", str(out), "--input", *map(str, images),
                 "--batch-size", "1"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == [line.split("\t")[0] for line in lines[1:]]
    missing = str(tmp_path / "missing.png")
    argv = ["classify", "--model", str(out), "--input", str(images[0]), missing]
    one_line_error(capsys, argv, "missing.png: no such image file")


def test_train_a_few_steps_on_the_embedded_digits(tmp_path, capsys):
    argv = ["train", "image", "--data", "digits", "--out", str(tmp_path / "digits"),
            "--config", recipe(tmp_path), "--image-size", "8", "--patch-size", "2",
            "--mixer", "pooling", *TRAIN_FLAGS]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 3
    config = json.loads((tmp_path / "digits" / "config.json").read_text())
    assert (config["mixer"], config["pooling"], config["channels"]) == ("pooling", "mean", 1)
    assert config["num_labels"] == 10
    task = json.loads((tmp_path / "digits" / "task_config.json").read_text())
    assert task["data"] == "digits" and task["split_seed"] == 0


def test_bad_image_input_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    base = ["train", "image", "--config", recipe(tmp_path), "--image-size", "8",
            "--patch-size", "4", *TRAIN_FLAGS]  # fmt: skip
    one_line_error(capsys, [*base, "--train", str(tmp_path / "empty"), "--valid",
                            str(tmp_path / "empty"), "--out", str(tmp_path / "a")],
                   "empty: no class folders")  # fmt: skip
    one_line_error(capsys, [*base, "--out", str(tmp_path / "b")], "--data digits")
    one_line_error(capsys, [*base, "--data", "digits", "--hflip", "--out", str(tmp_path / "c")],
                   "hflip")  # fmt: skip
    one_line_error(capsys, [*base, "--data", "digits", "--patch-size", "3", "--out",
                            str(tmp_path / "d")], "patch_size")  # fmt: skip


def test_model_info_shows_the_vit_presets(capsys):
    assert main(["model-info", "--preset", "vit-base"]) == 0
    out = capsys.readouterr().out
    assert "86,567,656" in out and "197 tokens" in out and "(2, 197, 768)" in out
    assert main(["model-info", "--preset", "vit-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"]["total"] == 5_717_416


@pytest.mark.parametrize("name", ["vit_digits.json", "poolformer_digits.json"])
def test_the_digits_recipes_build(name):
    from pathlib import Path

    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs

    path = Path(__file__).parents[1] / "recipes" / name
    args = build_parser().parse_args(["train", "image", "--config", str(path), "--out", "x"])
    model, train, task = build_configs(args)
    assert (model.image_size, model.patch_size, model.num_tokens - (model.pooling == "cls")) == (
        8, 2, 16)  # fmt: skip
    assert task.data == "digits" and train.max_steps // (1347 // task.batch_size) <= 200
