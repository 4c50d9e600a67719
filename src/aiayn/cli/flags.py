"""Command-line flags generated from config dataclasses: each option is declared once, as a
field with its help text (`metadata={"help": …}`), and becomes a flag here.

    add_flags(parser.add_argument_group("training"), TrainConfig)
    args = parser.parse_args()
    TrainConfig(**{**recipe_fields, **given(args, TrainConfig)})  # flags beat the recipe

A field `warmup_steps: int = 4000` becomes `--warmup-steps N` (type int; help ending in
`[4000]`). The annotation decides the rest:

- `int`, `float`, `str`: the value's type; `X | None`: an X (None is the unset default);
- `Literal["a", "b"]`: `choices`;
- `tuple[float, float]`: two values (`--adam-betas 0.9 0.98`);
- `bool`: a switch: `--x` turns on a default-off field, `--no-x` turns off a default-on one;
- no default: a required flag.

The help text gets the default appended, `[4000]`, unless it is None and the text already
says what "unset =" means.

`metadata={"flag": "--other-name"}` names the flag otherwise (a switch keeps its direction).
A flag the user does not give leaves no trace in the namespace (`argparse.SUPPRESS`), so
`given` returns only what was typed, and a recipe's value stands unless a flag overrides it.

The same annotations check a recipe's JSON values (`type_problem`), so a string where an
integer belongs is a one-line error naming the field, not a TypeError deep in a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class FieldType:
    """What a field's annotation says about its values."""

    base: type  # int, float, str or bool (a Literal's values' type; a tuple's items' type)
    optional: bool = False  # `X | None`
    choices: tuple[Any, ...] | None = None  # `Literal[...]`
    length: int | None = None  # `tuple[X, X]`: this many values

    @classmethod
    def of(cls, hint: Any) -> FieldType:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1 or len(rest) == len(args):
                raise TypeError(f"cannot make a flag of {hint}: only `X | None` unions")
            return dataclasses.replace(cls.of(rest[0]), optional=True)
        if origin is Literal:
            return cls(type(args[0]), choices=args)
        if origin is tuple:
            if not args or Ellipsis in args or len(set(args)) != 1:
                raise TypeError(f"cannot make a flag of {hint}: only tuple[X, X, …] of one X")
            return cls(args[0], length=len(args))
        if hint in _TYPE_NAMES:
            return cls(hint)
        raise TypeError(f"cannot make a flag of {hint}")

    def problem(self, value: Any) -> str | None:
        """Why a JSON value does not fit this type (None if it does)."""
        if value is None:
            return None if self.optional else f"must be {self._name()}, not null"
        if self.length is not None:
            if not isinstance(value, list | tuple) or len(value) != self.length:
                return f"must be a list of {self.length} values, each {_TYPE_NAMES[self.base]}"
            items = [FieldType(self.base).problem(v) for v in value]
            return next((p for p in items if p), None)
        if not _is(value, self.base):
            return f"must be {self._name()}, not {_json_name(value)}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        return None

    def _name(self) -> str:
        if self.length is not None:
            return f"a list of {self.length} values"
        return _TYPE_NAMES[self.base] + (" or null" if self.optional else "")


def field_types(cls: type) -> dict[str, FieldType]:
    """Each init field of dataclass `cls` → its FieldType."""
    hints = typing.get_type_hints(cls)
    return {f.name: FieldType.of(hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def type_problem(cls: type, name: str, value: Any) -> str | None:
    """Why `value` (parsed JSON) cannot be field `name` of dataclass `cls` (None if it can)."""
    return field_types(cls)[name].problem(value)


def add_flags(
    parser: Any,
    cls: type,
    *,
    exclude: Collection[str] = (),
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """One flag per init field of dataclass `cls` (but those in `exclude`) on `parser` (an
    ArgumentParser or an argument group); `choices` narrows a field's values beyond its
    annotation (e.g. to the metrics one task reports)."""
    types_ = field_types(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name in exclude:
            continue
        text = f.metadata.get("help")
        if not text:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: every flag is explained")
        kind = types_[f.name]
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        dest = _dest(cls, f.name)
        text = text.replace("%", "%%")  # argparse %-formats help
        if kind.base is bool:
            if kind.optional or kind.length is not None:
                raise TypeError(f"{cls.__name__}.{f.name}: a switch is bool, not {kind}")
            on = f.default is not True  # a default-on field gets a switch that turns it off
            if f.metadata.get("flag") is None and not on:
                flag = "--no-" + f.name.replace("_", "-")
            action = "store_true" if on else "store_false"
            parser.add_argument(flag, action=action, dest=dest, default=argparse.SUPPRESS,
                                help=text)  # fmt: skip
            continue
        kwargs: dict[str, Any] = dict(dest=dest, type=kind.base)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = argparse.SUPPRESS
            if not (f.default is None and "unset =" in text):  # else the help says it
                text = f"{text} [{_show(f.default)}]"
        if choices and f.name in choices:
            kwargs["choices"] = list(choices[f.name])
        elif kind.choices is not None:
            kwargs["choices"] = list(kind.choices)
        if kind.length is not None:
            kwargs["nargs"] = kind.length
        if "choices" not in kwargs:  # argparse would show the qualified dest
            kwargs["metavar"] = f.name.upper()
        parser.add_argument(flag, help=text, **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` whose flags (from `add_flags`) the user gave: name → value."""
    found = {}
    for f in dataclasses.fields(cls):
        dest = _dest(cls, f.name)
        if hasattr(args, dest):
            value = getattr(args, dest)
            found[f.name] = tuple(value) if isinstance(value, list) else value
    return found


def _dest(cls: type, name: str) -> str:
    # Qualified by the class, so that two configs (or a hand-written flag) may share a name.
    return f"{cls.__name__}.{name}"


def _show(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, tuple):
        return " ".join(_show(v) for v in default)
    return str(default)


def _is(value: Any, base: type) -> bool:
    if base is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)
