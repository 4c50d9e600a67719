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
RECIPES = sorted(RECIPE_DIR.glob("*.json"))


def recipe_configs(recipe: Path, out: Path, *flags: str):
    """(ModelConfig, TrainConfig, DataOptions) that `aiayn train --config recipe …flags` builds."""
    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs

    args = ["train", "--config", str(recipe), "--train-src", "a", "--train-tgt", "b"]
    args += ["--valid-src", "c", "--valid-tgt", "d", "--out", str(out), *flags]
    return build_configs(build_parser().parse_args(args))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_each_shipped_recipe_builds_and_averages_only_its_last_minutes(recipe, tmp_path):
    """Every recipe file loads into valid configs (a misspelt field is a ConfigError), and
    its exported average covers only the run's second half: averaging half-trained weights
    cost 8.2 val BLEU once (docs/results.md, run 35)."""
    model, train, data = recipe_configs(recipe, tmp_path)
    sections = json.loads(recipe.read_text())
    for config, section in ((model, "model"), (train, "train"), (data, "data")):
        for field, value in sections[section].items():  # every field takes effect
            assert getattr(config, field) == value, (section, field)
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
