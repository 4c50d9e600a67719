"""`python -m experiments`: lists every experiment of docs/why.md with its last run's minutes,
and refuses a name it does not know."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from experiments.__main__ import NAMES, main


def test_every_experiment_module_is_listed_once_and_has_a_main():
    here = Path(__file__).parents[1] / "experiments"
    # shared code, and table3_seeds (a report on two Table 3 runs): no experiment of their own
    helpers = {"__init__", "__main__", "common", "numbers", "mt", "table3_seeds"}
    modules = sorted(p.stem for p in here.glob("*.py") if p.stem not in helpers)
    assert sorted(NAMES) == modules and len(set(NAMES)) == len(NAMES)
    for name in NAMES:
        assert callable(importlib.import_module(f"experiments.{name}").main)


def test_list_sums_the_minutes_of_full_runs_only(tmp_path, capsys):
    (tmp_path / "sqrt_dk.json").write_text(json.dumps({"meta": {"minutes": 2.5, "smoke": False}}))
    (tmp_path / "norms.json").write_text(json.dumps({"meta": {"minutes": 0.1, "smoke": True}}))
    main(["--list", "--out", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("sqrt_dk")).endswith("2.5 min")
    assert next(line for line in lines if line.startswith("norms")).endswith("not run")
    assert lines[-1].split()[-2:] == ["2.5", "min"]


def test_an_unknown_name_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sqrt_d"])
    assert exit_.value.code == 2 and "choose from table3" in capsys.readouterr().err
