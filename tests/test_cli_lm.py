"""`aiayn generate` (and `aiayn.generate`) end to end on a tiny trained language model, and
one-line errors for bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import aiayn
from aiayn.cli import main
from aiayn.config import DecoderOnlyConfig, ModelConfig
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.serialization import save_pretrained
from aiayn.tasks.lm import LMConfig, train_lm
from aiayn.train.config import TrainConfig

TINY = DecoderOnlyConfig.create(
    vocab_size=100, n_layers=1, d_model=32, n_heads=2, d_ff=64, max_len=32, dropout=0.0,
    activation="gelu_tanh", norm_first=True,
)  # fmt: skip
TEXT = "the king speaks softly.\nmy lord weeps at night.\na fool sings with joy.\n" * 30


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A char-level model trained for 10 steps through the Python API."""
    root = tmp_path_factory.mktemp("lm_cli")
    (root / "train.txt").write_text(TEXT, encoding="utf-8")
    cfg = TrainConfig(schedule="constant", peak_lr=1e-2, warmup_steps=2, max_steps=10,
                      valid_every=10, log_every=5, device="cpu")  # fmt: skip
    train_lm(root / "train.txt", root / "run", TINY, cfg, LMConfig(batch_size=8), progress=False)
    return root / "run"


def generate(capsys, *args: str) -> str:
    assert main(["generate", *args]) == 0
    return capsys.readouterr().out


def test_generate_streams_the_prompt_and_its_continuation(model_dir, capsys):
    out = generate(capsys, "--model", str(model_dir), "--prompt", "the king", "--seed", "3",
                   "--max-new-tokens", "40")  # fmt: skip
    expected = aiayn.generate(model_dir, ["the king"], max_new_tokens=40, seed=3)[0]
    assert out == "the king" + expected + "\n"
    assert 0 < len(expected) <= 40  # one character a token, fewer if end-of-text came
    assert generate(capsys, "--model", str(model_dir), "--prompt", "the king", "--seed", "3",
                    "--max-new-tokens", "40") == out  # fmt: skip


def test_num_samples_are_separated_and_equal_the_api_samples(model_dir, capsys):
    out = generate(capsys, "--model", str(model_dir), "--prompt", "a", "--num-samples", "3",
                   "--seed", "5", "--max-new-tokens", "25", "--temperature", "1.5")  # fmt: skip
    samples = aiayn.generate(model_dir, ["a"], 25, temperature=1.5, seed=5, num_samples=3)
    assert out == "\n---\n".join("a" + s for s in samples) + "\n"
    assert len(set(samples)) > 1  # different seeds


def test_temperature_0_is_greedy_and_the_empty_prompt_starts_from_the_start_token(
    model_dir, capsys
):
    greedy = generate(capsys, "--model", str(model_dir), "--temperature", "0",
                      "--max-new-tokens", "30")  # fmt: skip
    assert greedy == generate(capsys, "--model", str(model_dir), "--top-k", "1", "--seed", "9",
                              "--max-new-tokens", "30")  # fmt: skip
    assert greedy == aiayn.generate(model_dir, [""], 30, temperature=0)[0] + "\n"


def test_input_file_gives_one_line_per_sample_whatever_the_batch_size(model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the king\n\nmy lord weeps\n", encoding="utf-8")
    common = ["--model", str(model_dir), "--input", str(prompts), "--num-samples", "2",
              "--seed", "1", "--max-new-tokens", "50", "--temperature", "1.2"]  # fmt: skip
    out = generate(capsys, *common)
    assert generate(capsys, *common, "--batch-size", "1") == out
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == 3 * 2 + 1  # one line per sample, in order
    expected = aiayn.generate(model_dir, ["the king", "", "my lord weeps"], 50,
                              temperature=1.2, seed=1, num_samples=2, batch_size=4)  # fmt: skip
    unescaped = [line.replace("\\n", "\n") for line in lines[:-1]]  # no backslash in TEXT
    assert unescaped == expected
    assert any("\n" in text for text in expected)  # the escaping was exercised


def test_the_api_streams_text_as_tokens_come(model_dir):
    pieces: list[tuple[int, str]] = []
    outputs = aiayn.generate(model_dir, ["my", "the"], 20, seed=2, num_samples=2,
                             batch_size=1, on_text=lambda k, s: pieces.append((k, s)))  # fmt: skip
    assert [k for k, _ in pieces] == sorted(k for k, _ in pieces)  # one output after another
    for k, text in enumerate(outputs):
        assert "".join(s for j, s in pieces if j == k) == text
    assert sum(len(s) == 1 for _, s in pieces) == len(pieces)  # char model: a piece per token


def one_line_error(capsys, *args: str, match: str) -> None:
    assert main(["generate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aiayn generate: error: ") and err.count("\n") == 1, err
    assert match in err, err


def test_bad_input_is_a_one_line_error(model_dir, tmp_path, capsys):
    one_line_error(capsys, "--model", str(tmp_path / "nowhere"), match="no such model directory")
    translation = tmp_path / "translation"
    save_pretrained(EncoderDecoder(ModelConfig.create(
        src_vocab_size=20, tgt_vocab_size=20, d_model=8, n_heads=2, d_ff=16,
        n_encoder_layers=1, n_decoder_layers=1,
    )), translation)  # fmt: skip
    one_line_error(capsys, "--model", str(translation), match="not a language model")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("the king\nça va\n".encode("latin-1"))
    one_line_error(capsys, "--model", str(model_dir), "--input", str(bad), match="latin1.txt:2")
    one_line_error(capsys, "--model", str(model_dir), "--top-p", "1.5", match="top_p")
    one_line_error(capsys, "--model", str(model_dir), "--temperature", "-1", match="temperature")


def test_help_explains_every_flag_with_its_default_and_the_sliding_window():
    proc = subprocess.run([sys.executable, "-m", "aiayn", "generate", "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "window slides" in text and "0 = greedy" in text
    text = text.split("options:")[1]  # the flags' explanations, after the usage
    for flag, default in [("--max-new-tokens N", "[256]"), ("--temperature T", "[1.0]"),
                          ("--top-k K", "[unset]"), ("--top-p P", "[unset]"),
                          ("--repetition-penalty R", "[1.0]"), ("--seed S", "[unset]"),
                          ("--num-samples N", "[1]"), ("--batch-size N", "[64]")]:  # fmt: skip
        assert re.search(re.escape(flag) + r" [^\[]*" + re.escape(default), text), flag
    for flag in ("--model DIR", "--prompt TEXT", "--input FILE", "--device"):
        assert flag in text


def test_generation_with_a_model_object_needs_its_tokenizer(model_dir):
    from aiayn.generator import load_language_model

    model, tokenizer = load_language_model(model_dir)
    with pytest.raises(ValueError, match="tokenizer"):
        aiayn.generate(model, ["x"])
    out = aiayn.generate(model, ["the"], 10, temperature=0, tokenizer=tokenizer)
    assert out == aiayn.generate(model_dir, ["the"], 10, temperature=0)
    assert not model.training and torch.is_inference_mode_enabled() is False


RECIPE = Path(__file__).parents[1] / "recipes" / "shakespeare_char.json"


def lm_configs(*args: str):
    """(DecoderOnlyConfig, TrainConfig, LMConfig) that `aiayn train lm …args` builds."""
    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs

    return build_configs(build_parser().parse_args(["train", "lm", *args]))


def test_the_shakespeare_recipe_is_nanogpts_setting_and_every_field_takes_effect(tmp_path):
    model, train, task = lm_configs("--train-text", "input.txt", "--out", str(tmp_path),
                                    "--config", str(RECIPE))  # fmt: skip
    recipe = json.loads(RECIPE.read_text())
    assert recipe["preset"] == "baby-gpt" and isinstance(model, DecoderOnlyConfig)
    for field, value in recipe["model"].items():
        assert getattr(model if hasattr(model, field) else model.layer, field) == value, field
    for field, value in recipe["train"].items():
        value = tuple(value) if isinstance(value, list) else value
        assert getattr(train, field) == value, field
    for field, value in recipe["data"].items():
        assert getattr(task, field) == value, field
    # nanoGPT's config/train_shakespeare_char.py
    assert (model.n_layers, model.d_model, model.n_heads, model.max_len) == (6, 384, 6, 256)
    assert model.layer.dropout == 0.2 and task.batch_size == 64 and task.tokenizer == "char"
    assert (train.schedule, train.peak_lr, train.min_lr, train.warmup_steps) == (
        "cosine", 1e-3, 1e-4, 100)  # fmt: skip
    assert train.adam_betas == (0.9, 0.99) and train.weight_decay == 0.1
    assert (train.clip_norm, train.max_steps, train.valid_every) == (1.0, 5000, 250)
    assert train.precision == "auto" and train.decay_steps is None  # decays to max_steps
    # flags beat the recipe
    flags = ("--batch-size", "12", "--max-steps", "700")
    _, train, task = lm_configs("--train-text", "a", "--out", str(tmp_path), "--config",
                                str(RECIPE), *flags)  # fmt: skip
    assert task.batch_size == 12 and train.max_steps == 700


def test_the_cpu_recipe_is_nanogpts_cpu_setting_and_every_field_takes_effect(tmp_path):
    path = RECIPE.with_name("shakespeare_char_cpu.json")
    model, train, task = lm_configs("--train-text", "input.txt", "--out", str(tmp_path),
                                    "--config", str(path))  # fmt: skip
    recipe = json.loads(path.read_text())
    for field, value in recipe["model"].items():
        assert getattr(model if hasattr(model, field) else model.layer, field) == value, field
    for field, value in recipe["train"].items():
        value = tuple(value) if isinstance(value, list) else value
        assert getattr(train, field) == value, field
    for field, value in recipe["data"].items():
        assert getattr(task, field) == value, field
    # nanoGPT's README: --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
    # --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
    assert (model.n_layers, model.n_heads, model.d_model, model.max_len) == (4, 4, 128, 64)
    assert (task.batch_size, train.max_steps, model.layer.dropout) == (12, 2000, 0.0)


def test_train_lm_end_to_end_then_resume_then_generate(tmp_path, capsys):
    (tmp_path / "train.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "valid.txt").write_text(TEXT[:300], encoding="utf-8")
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({
        "preset": "gpt-mini",
        "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 32},
        "train": {"schedule": "constant", "peak_lr": 0.01, "warmup_steps": 2, "log_every": 2},
        "data": {"batch_size": 8},
    }))  # fmt: skip
    out = tmp_path / "run"
    common = ["train", "lm", "--train-text", str(tmp_path / "train.txt"), "--valid-text",
              str(tmp_path / "valid.txt"), "--out", str(out), "--config", str(recipe),
              "--no-progress", "--valid-every", "2", "--device", "cpu"]  # fmt: skip
    assert main([*common, "--max-steps", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 4 and set(result["last_valid"]) == {"loss", "ppl", "bpc"}
    assert main([*common, "--max-steps", "6", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 6
    assert (out / "data" / "valid.tokens").is_file()
    assert json.loads((out / "task_config.json").read_text())["task"] == "lm"
    text = generate(capsys, "--model", str(out), "--prompt", "the", "--max-new-tokens", "5",
                    "--temperature", "0")  # fmt: skip
    assert text.startswith("the") and text.endswith("\n")


def test_train_lm_refuses_a_translation_preset_in_a_recipe(tmp_path, capsys):
    (tmp_path / "train.txt").write_text(TEXT, encoding="utf-8")
    recipe = tmp_path / "wrong.json"
    recipe.write_text(json.dumps({"preset": "tiny"}))
    args = ["train", "lm", "--train-text", str(tmp_path / "train.txt"), "--out",
            str(tmp_path / "run"), "--config", str(recipe)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "decoder-only" in err


def test_resume_alone_continues_with_the_options_the_run_was_started_with(tmp_path, capsys, caplog):
    """`--resume` with no recipe and no option flags goes on exactly as the run would have:
    the saved training and task options (a cosine to step 6, lr 3e-3, weight decay, batch 6)
    come back from --out, not the defaults; a flag given at the resume overrides one, with a
    warning."""
    (tmp_path / "train.txt").write_text(TEXT, encoding="utf-8")
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({
        "preset": "gpt-mini",
        "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 32,
                  "dropout": 0.1},
        "train": {"schedule": "cosine", "peak_lr": 3e-3, "min_lr": 1e-4, "warmup_steps": 2,
                  "weight_decay": 0.1, "max_steps": 6, "valid_every": 3, "keep_last": 5},
        "data": {"batch_size": 6, "valid_fraction": 0.2},
    }))  # fmt: skip
    inputs = ["--train-text", str(tmp_path / "train.txt"), "--no-progress", "--device", "cpu"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "lm", *inputs, "--out", str(straight), "--config", str(recipe)]) == 0
    # the same run stopped at its step-3 checkpoint: --max-steps changes only where it stops,
    # the cosine's end is pinned by decay_steps
    first = ["--config", str(recipe), "--max-steps", "3", "--decay-steps", "6"]
    assert main(["train", "lm", *inputs, "--out", str(split), *first]) == 0
    with caplog.at_level("WARNING", logger="aiayn.cli.train"):
        resume = ["--resume", "--max-steps", "6", "--valid-every", "3", "--dropout", "0.1"]
        assert main(["train", "lm", *inputs, "--out", str(split), *resume]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 6
    messages = [r.getMessage() for r in caplog.records]
    changed = sorted(m.split(" with ")[1].split(" = ")[0] for m in messages if " with " in m)
    assert changed == ["max_steps"]  # valid_every 3 is what the run had: no warning
    assert [m for m in messages if " with " not in m] == [
        "--resume: the model is the run's own; --dropout is ignored"
    ]
    from safetensors.torch import load_file

    last = Path("checkpoints", "step_00000006", "model.safetensors")  # not the best: the last
    a, b = load_file(straight / last), load_file(split / last)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((split / "train_config.json").read_text())
    assert (saved["peak_lr"], saved["weight_decay"], saved["max_steps"]) == (3e-3, 0.1, 6)
    # switching AdamW's decay off changes the optimizer's state layout: one line, not a trace
    capsys.readouterr()
    again = ["train", "lm", *inputs, "--out", str(split), "--resume", "--max-steps", "8"]
    assert main([*again, "--weight-decay", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight_decay" in err and "step_00000006" in err


def test_resume_leaves_out_a_saved_option_this_version_no_longer_has(tmp_path, capsys, caplog):
    """A run saved by an older version (its train_config.json has `best_higher`, since
    removed) still resumes: the option is named in a warning and left out."""
    (tmp_path / "train.txt").write_text(TEXT, encoding="utf-8")
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({
        "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 32},
        "train": {"schedule": "constant", "warmup_steps": 1, "valid_every": 2},
        "data": {"batch_size": 4},
    }))  # fmt: skip
    out = tmp_path / "run"
    args = ["train", "lm", "--train-text", str(tmp_path / "train.txt"), "--out", str(out),
            "--config", str(recipe), "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main([*args, "--max-steps", "2"]) == 0
    saved = json.loads((out / "train_config.json").read_text())
    (out / "train_config.json").write_text(json.dumps({**saved, "best_higher": False}))
    with caplog.at_level("WARNING", logger="aiayn.cli.train"):
        resume = ["train", "lm", "--train-text", str(tmp_path / "train.txt"), "--out", str(out),
                  "--resume", "--max-steps", "4", "--no-progress"]  # fmt: skip
        assert main(resume) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 4
    assert any("'best_higher' is no longer one" in r.getMessage() for r in caplog.records)
    assert "best_higher" not in json.loads((out / "train_config.json").read_text())


def test_resume_of_another_tasks_run_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "task_config.json").write_text(json.dumps({"task": "translation"}))
    args = ["train", "lm", "--train-text", str(tmp_path / "x.txt"), "--out", str(out), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a translation run" in err and "train translation" in err
