"""Flags generated from a config dataclass: name, type, choices, default in the help, switches,
required fields; `given` returns only what was typed; JSON values checked by annotation."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from aiayn.cli.flags import FieldType, add_flags, given, type_problem


def _help(text: str, **extra):
    return {"help": text, **extra}


@dataclass(frozen=True)
class Example:
    path: str = field(metadata=_help("where"))  # no default: required
    steps: int = field(default=100, metadata=_help("how many"))
    limit: int | None = field(default=None, metadata=_help("at most"))
    budget: float | None = field(default=None, metadata=_help("minutes; unset = no limit"))
    rate: float = field(default=5e-4, metadata=_help("speed, 5% less"))
    mode: Literal["fast", "slow"] = field(default="fast", metadata=_help("how"))
    name: str = field(default="auto", metadata=_help("a name"))
    pair: tuple[float, float] = field(default=(0.9, 0.98), metadata=_help("two numbers"))
    verbose: bool = field(default=False, metadata=_help("say more"))
    cache: bool = field(default=True, metadata=_help("keep results"))
    shared: bool = field(default=True, metadata=_help("one for all", flag="--separate"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x")
    add_flags(p, Example)
    return p


def action(flag: str) -> argparse.Action:
    return next(a for a in parser()._actions if flag in a.option_strings)


def test_each_annotation_gives_its_flag_type_choices_and_default_in_the_help():
    assert action("--steps").type is int and action("--steps").help == "how many [100]"
    assert action("--limit").type is int and action("--limit").help == "at most [unset]"
    # None explained by the help itself: no "[unset]" after it
    assert action("--budget").type is float and action("--budget").help.endswith("no limit")
    assert "speed, 5% less [0.0005]" in parser().format_help()  # argparse %-formats help
    assert action("--mode").choices == ["fast", "slow"] and action("--mode").help == "how [fast]"
    assert action("--name").type is str and action("--name").choices is None
    assert action("--pair").nargs == 2 and action("--pair").help == "two numbers [0.9 0.98]"
    assert action("--path").required and not action("--steps").required
    assert isinstance(action("--verbose"), argparse._StoreTrueAction)
    assert isinstance(action("--no-cache"), argparse._StoreFalseAction)
    assert isinstance(action("--separate"), argparse._StoreFalseAction)
    assert "--x" not in parser().format_help() and "fast,slow" in parser().format_help()


def test_given_returns_only_the_flags_typed_with_their_types():
    assert given(parser().parse_args(["--path", "p"]), Example) == {"path": "p"}
    args = parser().parse_args(
        ["--path", "p", "--steps", "7", "--limit", "3", "--budget", "1.5", "--mode", "slow",
         "--pair", "0.8", "0.9", "--verbose", "--no-cache", "--separate"]
    )  # fmt: skip
    assert given(args, Example) == {
        "path": "p", "steps": 7, "limit": 3, "budget": 1.5, "mode": "slow", "pair": (0.8, 0.9),
        "verbose": True, "cache": False, "shared": False,
    }  # fmt: skip
    Example(**given(args, Example))  # a valid config
    with pytest.raises(SystemExit):
        parser().parse_args(["--path", "p", "--mode", "medium"])
    with pytest.raises(SystemExit):
        parser().parse_args(["--path", "p", "--steps", "many"])
    with pytest.raises(SystemExit):  # required
        parser().parse_args([])


def test_exclude_and_narrowed_choices():
    p = argparse.ArgumentParser()
    add_flags(p, Example, exclude={"steps", "path"}, choices={"name": ["a", "b"]})
    assert "--steps" not in p.format_help()
    assert given(p.parse_args(["--name", "b"]), Example) == {"name": "b"}
    with pytest.raises(SystemExit):
        p.parse_args(["--name", "auto"])


def test_two_configs_may_share_a_field_name():
    @dataclass
    class Other:
        steps: int = field(default=1, metadata=_help("other steps"))

    p = argparse.ArgumentParser()
    add_flags(p, Example, exclude={"steps"})
    p.add_argument("--steps", type=int)  # e.g. a hand-written flag of the same name
    add_flags(p, Other, exclude={"steps"})
    args = p.parse_args(["--path", "p", "--steps", "4"])
    assert given(args, Example) == {"path": "p"} and given(args, Other) == {}


def test_a_field_without_help_or_of_an_unsupported_type_is_refused():
    @dataclass
    class NoHelp:
        x: int = 1

    @dataclass
    class Mixed:
        x: int | str = field(default=1, metadata=_help("?"))

    for cls in (NoHelp, Mixed):
        with pytest.raises(TypeError):
            add_flags(argparse.ArgumentParser(), cls)


@pytest.mark.parametrize(
    "name, value, problem",
    [("steps", "100", "must be an integer, not the string '100'"),
     ("steps", True, "must be an integer, not true/false"),
     ("steps", 1.5, "must be an integer, not 1.5"),
     ("steps", None, "must be an integer, not null"),
     ("limit", None, None), ("limit", 3, None), ("limit", [3], "an integer or null, not a list"),
     ("rate", 1, None), ("rate", "fast", "must be a number"),
     ("mode", "slow", None), ("mode", "medium", "must be one of fast, slow"),
     ("pair", [0.9, 1], None), ("pair", [0.9], "a list of 2 values"),
     ("pair", [0.9, "x"], "must be a number"),
     ("verbose", False, None), ("verbose", 0, "must be true or false, not 0")],
)  # fmt: skip
def test_json_values_are_checked_against_the_annotation(name, value, problem):
    got = type_problem(Example, name, value)
    assert got == problem if problem is None else problem in got


def test_field_type_reads_each_annotation_kind():
    assert FieldType.of(int | None) == FieldType(int, optional=True)
    assert FieldType.of(Literal["a", "b"]) == FieldType(str, choices=("a", "b"))
    assert FieldType.of(tuple[float, float]) == FieldType(float, length=2)
    with pytest.raises(TypeError):
        FieldType.of(dict[str, int])
