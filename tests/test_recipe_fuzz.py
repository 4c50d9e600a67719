"""Property: whatever a recipe holds, `aiayn train` either builds exactly the configs it says
or exits 2 with one line naming the offending key: never a traceback, never a value silently
changed (5.5 steps trained as 6, `true` as 1). For every task, every section, every field.

The task's training is replaced by a stub that records the configs it would train with: the
checks under test are those made before any data is read. (Checks that need the data or the
machine, such as the device, have their own tests in test_bad_input.py.)
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiayn.cli import main
from aiayn.cli import train as train_cli
from aiayn.cli.flags import field_types
from aiayn.config import LAYER_FIELDS
from aiayn.models import presets
from aiayn.train.config import TrainConfig

TASKS = sorted(train_cli.TASKS)


def model_fields(task: str) -> dict[str, Any]:
    """The model section's keys for `task`: its family's own fields, the layer's flat."""
    family = type(presets.get(train_cli.TASKS[task].default_preset))
    own = {f.name for f in dataclasses.fields(family) if f.name != "layer"}
    return sorted(own | set(LAYER_FIELDS))


def section_fields(task: str, section: str) -> list[str]:
    if section == "model":
        return model_fields(task)
    task_fields = sorted(field_types(train_cli.TASKS[task].config))
    return sorted(field_types(TrainConfig)) + task_fields if section == "train" else task_fields


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e-9, 2**31, "", "auto", "relu", "cosine", "none"]),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


class Stopped(Exception):
    """Raised by the stub training function with the configs it was given."""


@pytest.fixture
def run_recipe(tmp_path, monkeypatch, capsys):
    def stub(**kwargs):
        raise Stopped(kwargs)

    for name, command in train_cli.TASKS.items():
        monkeypatch.setitem(train_cli.TASKS, name, dataclasses.replace(command, train=stub))
    path = tmp_path / "recipe.json"

    def run(task: str, recipe: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        path.write_text(json.dumps(recipe), encoding="utf-8")
        inputs = [
            part for name in train_cli.TASKS[task].inputs
            for part in ("--" + name.replace("_", "-"), "x.txt")
        ]  # fmt: skip
        args = ["train", task, *inputs, "--out", str(tmp_path / "out"), "--config", str(path)]
        try:
            code, built = main(args), None
        except Stopped as stopped:
            code, built = 0, stopped.args[0]
        return code, capsys.readouterr().err, built

    return run


def built_value(built: dict[str, Any], section: str, key: str) -> Any:
    if section == "model":
        cfg = built["model_config"]
        return getattr(cfg.layer if key in LAYER_FIELDS else cfg, key)
    train_cfg, task_cfg = built["train_config"], built["task_config"]
    if section == "train" and key in field_types(TrainConfig):
        return getattr(train_cfg, key)
    return getattr(task_cfg, key)


def same(given: Any, kept: Any) -> bool:
    if isinstance(given, list):
        return (
            isinstance(kept, tuple | list)
            and len(given) == len(kept)
            and all(same(g, k) for g, k in zip(given, kept, strict=True))
        )
    if isinstance(given, bool) or isinstance(kept, bool):
        return type(given) is type(kept) and given == kept
    return given == kept and type(given) in (type(kept), int)


def check(run_recipe, task: str, section: str, key: str, value: Any) -> None:
    code, err, built = run_recipe(task, {section: {key: value}})
    if code == 0:
        kept = built_value(built, section, key)
        turned_off = key in ("valid_every", "valid_every_minutes") and value == 0 and kept is None
        assert turned_off or same(value, kept), f"{section}.{key} = {value!r} became {kept!r}"
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (section, key, value, err)
    assert lines[0].startswith("aiayn train: error:") and key in lines[0], lines[0]


@pytest.mark.parametrize("task", TASKS)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_value_of_any_field_builds_as_given_or_is_named(run_recipe, task, data):
    section = data.draw(st.sampled_from(["model", "train", "data"]))
    key = data.draw(st.sampled_from(section_fields(task, section)))
    check(run_recipe, task, section, key, data.draw(JSON_VALUES))


@pytest.mark.parametrize("task", TASKS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_unknown_keys_are_named(run_recipe, task, data):
    section = data.draw(st.sampled_from(["model", "train", "data", None]))
    known = set(section_fields(task, section)) if section else set(train_cli._RECIPE_KEYS)
    key = data.draw(st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(
        lambda k: k not in known))  # fmt: skip
    recipe = {section: {key: 1}} if section else {key: 1}
    code, err, _ = run_recipe(task, recipe)
    assert code == 2 and len(err.strip().splitlines()) == 1 and key in err, err


def wrong_type(task: str, section: str, key: str) -> Any:
    """A JSON value of the wrong type for field `key`: a string, or a list for a string."""
    if section == "model":
        cfg = presets.get(train_cli.TASKS[task].default_preset)
        is_str = isinstance(getattr(cfg.layer if key in LAYER_FIELDS else cfg, key), str)
    else:
        kind = {**field_types(TrainConfig), **field_types(train_cli.TASKS[task].config)}[key]
        is_str = kind.base is str
    return [1, 2] if is_str else "x"


@pytest.mark.parametrize("task", TASKS)
def test_every_field_refuses_a_wrong_type_by_name(run_recipe, task):
    for section in ("model", "train", "data"):
        for key in section_fields(task, section):
            value = wrong_type(task, section, key)
            code, err, _ = run_recipe(task, {section: {key: value}})
            assert code == 2, (section, key, value)
            assert f"'{key}'" in err and len(err.strip().splitlines()) == 1, err
            code, err, _ = run_recipe(task, {section: {key: math.nan}})
            assert code == 2 and f"'{key}'" in err, f"{section}.{key} = NaN: {err or 'accepted'}"
