"""`aiayn demo`, the embedded default job, end to end on a short time budget."""

import json

from aiayn.cli import main
from aiayn.tasks.number_demo import DEMO_TRAIN, demo_train_config


def test_the_cosine_ends_where_the_time_budget_does():
    assert DEMO_TRAIN.schedule == "cosine"
    assert DEMO_TRAIN.decay_minutes == DEMO_TRAIN.max_minutes
    short = demo_train_config(0.5)
    assert short.max_minutes == short.decay_minutes == 0.5
    assert demo_train_config(None) == DEMO_TRAIN
    assert DEMO_TRAIN.precision == "auto"  # emulated bf16 would leave the demo a few steps


def test_demo_trains_translates_and_scores_the_unseen_numbers(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--max-minutes", "0.1", "--beam", "1", "--json"]
    assert main([*args, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test_sentences"] == 1000 and summary["steps"] > 0
    assert 0.0 <= summary["exact_match"] <= 1.0 and len(summary["samples"]) == 8
    saved = json.loads((out / "model" / "train_config.json").read_text())
    assert saved["max_minutes"] == saved["decay_minutes"] == 0.1
    assert (out / "cross_attention.png").stat().st_size > 0
    # a second demo into the same directory replaces the first instead of refusing
    assert main([*args, "--no-progress"]) == 0
