"""The CLI as a user runs it: output, JSON, help, and one-line errors without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiayn.cli import main
from aiayn.errors import ConfigError


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiayn", *args], capture_output=True, text=True, timeout=120
    )


def test_model_info_text(capsys):
    assert main(["model-info", "--preset", "base"]) == 0
    out = capsys.readouterr().out
    assert "63,082,496" in out  # the paper's base model, shared 37k vocabulary
    assert "tied: the embedding matrix" in out
    assert "scores QKᵀ/√d_k" in out and "(2, 8, 7, 7)" in out


def test_model_info_json(capsys):
    assert main(["model-info", "--preset", "small", "--vocab-size", "1000", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["src_vocab_size"] == 1000
    assert info["parameters"]["total"] == sum(
        v for k, v in info["parameters"].items() if k != "total"
    )
    assert info["flops"]["train_per_tgt_token"] == pytest.approx(
        3 * info["flops"]["forward_per_tgt_token"]
    )
    assert {"module", "step", "shape"} <= set(info["shape_trace"][0])


def test_bad_value_is_one_line_without_traceback():
    proc = run("model-info", "--preset", "tiny", "--vocab-size", "0")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "src_vocab_size" in proc.stderr and "positive integer" in proc.stderr


def test_help_explains_every_flag():
    proc = run("model-info", "--help")
    assert proc.returncode == 0
    for flag in ("--preset", "--vocab-size", "--batch", "--src-len", "--tgt-len", "--json"):
        assert flag in proc.stdout


RECIPE_DIR = Path(__file__).parents[1] / "recipes"
RECIPES = sorted(RECIPE_DIR.glob("multi30k_*.json"))  # translation; lm: test_cli_lm.py


def recipe_configs(recipe: Path | None, out: Path, *flags: str, task: tuple[str, ...] = ()):
    """(ModelConfig, TrainConfig, TranslationConfig) that `aiayn train [task] --config recipe
    …flags` builds."""
    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs

    args = ["train", *task, "--train-src", "a", "--train-tgt", "b"]
    args += ["--valid-src", "c", "--valid-tgt", "d", "--out", str(out), *flags]
    if recipe is not None:
        args += ["--config", str(recipe)]
    return build_configs(build_parser().parse_args(args))


def _value(config, field):
    # the lead nests layer settings (dropout …) under `layer` in the model's config
    return getattr(config, field) if hasattr(config, field) else getattr(config.layer, field)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_each_shipped_recipe_builds_and_averages_only_its_last_minutes(recipe, tmp_path):
    """Every recipe file loads into valid configs (a misspelt field is a ConfigError), and
    its exported average covers only the run's second half: averaging half-trained weights
    cost 8.2 val BLEU once (docs/results.md, run 35)."""
    model, train, task = recipe_configs(recipe, tmp_path)
    sections = json.loads(recipe.read_text())
    for field, value in sections["model"].items():  # every field takes effect
        assert _value(model, field) == value, field
    for field, value in sections["train"].items():  # training options, and the task's too
        assert getattr(train if hasattr(train, field) else task, field) == value, field
    assert any(not hasattr(train, field) for field in sections["train"])  # max_tokens …
    for field, value in sections["data"].items():
        assert getattr(task, field) == value, field
    assert train.max_minutes and train.valid_every_minutes and train.valid_every is None
    assert train.average_last * train.valid_every_minutes <= train.max_minutes / 2
    assert train.decay_minutes == train.max_minutes  # the lr reaches 0 at the deadline


def test_train_flags_override_the_recipe_and_valid_every_0_leaves_the_clock(tmp_path):
    """The shipped recipe validates by the clock alone; --valid-every N adds a step interval
    to it, and --valid-every 0 removes one a recipe sets."""

    def train_config(*flags):
        return recipe_configs(RECIPE_DIR / "multi30k_en_de.json", tmp_path, *flags)[1]

    shipped = train_config()
    assert shipped.valid_every is None and shipped.valid_every_minutes == 5
    assert shipped.average_last * shipped.valid_every_minutes < shipped.max_minutes
    both = train_config("--valid-every", "250")
    assert both.valid_every == 250 and both.valid_every_minutes == 5
    steps_only = train_config("--valid-every", "250", "--valid-every-minutes", "0")
    assert steps_only.valid_every == 250 and steps_only.valid_every_minutes is None
    ema = train_config("--ema-minutes", "5", "--average-last", "0")
    assert ema.ema_minutes == 5 and ema.ema_decay is None and ema.average_last == 0
    with pytest.raises(ConfigError, match="--average-last 0"):  # the recipe averages 5
        train_config("--ema-decay", "0.999")


def test_train_without_a_task_word_is_translation(tmp_path):
    recipe = RECIPE_DIR / "multi30k_en_de.json"
    flags = ("--max-tokens", "2000", "--r-drop", "3", "--seed", "7", "--separate-vocab")
    plain = recipe_configs(recipe, tmp_path, *flags)
    assert plain == recipe_configs(recipe, tmp_path, *flags, task=("translation",))
    from aiayn.cli import build_parser

    args = ["train", "--train-src", "a", "--train-tgt", "b", "--valid-src", "c"]
    args += ["--valid-tgt", "d", "--out", "e"]
    assert build_parser().parse_args(args).task == "translation"


def test_a_flag_not_given_leaves_the_recipe_and_a_flag_given_overrides_it(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({
        "preset": "tiny",
        "train": {"warmup_steps": 123, "label_smoothing": 0.2, "max_tokens": 1000,
                  "precision": "bf16", "compile": True, "adam_betas": [0.9, 0.99]},
        "data": {"vocab_size": 500, "joint": False, "lowercase": True},
    }))  # fmt: skip
    _, train, task = recipe_configs(recipe, tmp_path)
    assert (train.warmup_steps, train.precision, train.compile) == (123, "bf16", True)
    assert train.adam_betas == (0.9, 0.99)
    assert (task.label_smoothing, task.max_tokens, task.vocab_size) == (0.2, 1000, 500)
    assert not task.joint and task.lowercase
    # the defaults of flags not given (and of switches not thrown) never reach the configs
    _, train, task = recipe_configs(recipe, tmp_path, "--max-tokens", "700", "--seed", "3")
    assert (task.max_tokens, task.label_smoothing, task.vocab_size) == (700, 0.2, 500)
    assert (train.seed, train.warmup_steps, train.compile) == (3, 123, True)
    assert not task.joint and task.lowercase
    _, train, _ = recipe_configs(recipe, tmp_path, "--adam-betas", "0.8", "0.9")
    assert train.adam_betas == (0.8, 0.9)


@pytest.mark.parametrize(
    "section, value, message",
    [("train", {"warmup_steps": "4000"}, "section 'train': 'warmup_steps' must be an integer, "
      "not the string '4000'"),
     ("train", {"max_tokens": None}, "section 'train': 'max_tokens' must be an integer, not null"),
     ("train", {"precision": "fp8"}, "section 'train': 'precision' must be one of fp32, bf16"),
     ("train", {"compile": 1}, "section 'train': 'compile' must be true or false"),
     ("train", {"adam_betas": 0.9}, "'adam_betas' must be a list of 2 values"),
     ("data", {"valid_beam": 1.5}, "section 'data': 'valid_beam' must be an integer"),
     ("data", {"label_smothing": 0.1}, "section 'data': unknown option 'label_smothing'"),
     ("train", {"max_step": 3}, "section 'train': unknown option 'max_step'"),
     ("data", {"max_steps": 3}, "section 'data': unknown option 'max_steps'"),
     ("train", [1, 2], "section 'train' must be a JSON object"),
     ("data", "x", "section 'data' must be a JSON object")],
)  # fmt: skip
def test_a_bad_recipe_value_is_a_one_line_error_naming_file_section_and_field(
    tmp_path, section, value, message
):
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps({"preset": "tiny", section: value}))
    with pytest.raises(ConfigError) as err:
        recipe_configs(recipe, tmp_path)
    assert str(err.value).startswith(f"{recipe}: ") and message in str(err.value)
    args = ["train", "--config", recipe, "--train-src", "a", "--train-tgt", "b", "--valid-src"]
    proc = run(*map(str, [*args, "c", "--valid-tgt", "d", "--out", tmp_path / "out"]))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr


def test_train_help_lists_the_tasks_and_the_task_help_explains_every_option():
    import dataclasses

    from aiayn.tasks.translation import TranslationConfig
    from aiayn.train.config import TrainConfig

    top = run("train", "--help")
    assert top.returncode == 0 and "translation" in top.stdout and "TASK" in top.stdout
    proc = run("train", "translation", "--help")
    assert proc.returncode == 0
    help_text = " ".join(proc.stdout.split())  # unwrapped
    flags = ["--train-src", "--out", "--config", "--preset", "--dropout", "--max-len"]
    flags += ["--separate-vocab", "--resume", "--no-progress"]
    for cls in (TrainConfig, TranslationConfig):
        for f in dataclasses.fields(cls):
            if f.name not in ("joint", "max_len"):  # --separate-vocab; the model's --max-len
                flags.append("--" + f.name.replace("_", "-"))
    for flag in flags:
        assert f"{flag} " in help_text, flag
    assert "--warmup-steps WARMUP_STEPS linear warm-up steps [4000]" in help_text
    assert "--schedule {noam,inverse_sqrt,cosine,constant}" in help_text
    assert "--best-metric {loss,nll,ppl,bleu,exact_match}" in help_text
    assert "--max-tokens MAX_TOKENS tokens per micro-batch" in help_text
    assert run("train", "--help").stdout == top.stdout  # not taken for translation's flags
