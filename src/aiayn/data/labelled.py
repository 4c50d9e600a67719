"""Labelled text for classification (GLUE-style tasks): texts, optional second texts, labels.

`read_labelled` reads one file, its format told by the extension (optionally + `.gz`):

- `.tsv` — GLUE's format: a header row, then one row per line, fields separated by tabs and
  *not* quoted. GLUE's files hold bare quote characters (`a "quoted" word`, a lone `"`), which a
  quoting CSV reader would take for the start of a field spanning lines; here a field is
  exactly the text between two tabs (`csv.QUOTE_NONE`).
- `.csv` — a header row, then standard CSV (RFC 4180 quoting: a quoted field may hold commas,
  `""` for a quote, even newlines).
- `.jsonl` — one JSON object per line; the columns are its keys. A label may be a number or a
  boolean and is kept as written in JSON (`1` → "1", `true` → "true").

Columns are chosen by name (header or keys), so column order and extra columns do not matter.
Blank lines are not rows. Labels are strings; `LabelSet` maps them to class ids in a fixed
order and is saved with the model, so a model's id k always means the same label.

Bad input raises a one-line `DataError` naming the file, the line and the column, and what to
do; invalid UTF-8 names file:line as everywhere in aiayn (see `parallel._iter_lines`).

Example::

    train = read_labelled("SST-2/train.tsv", "sentence", label_column="label")
    labels = LabelSet.from_labels(train)          # names ("0", "1")
    y = labels.ids(train)                         # [1, 0, ...]
    mnli = read_labelled("MNLI/dev_matched.tsv", "sentence1", "sentence2", "gold_label")
    inputs = read_texts("to_classify.txt")        # one text per line, blank lines kept
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiayn.data.parallel import _check_file, _iter_lines
from aiayn.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]

FORMATS = (".tsv", ".csv", ".jsonl")


@dataclass
class LabelledData:
    """Rows read from one file; all lists have one entry per row, in file order.

    Attributes:
        texts: the text column (the first text of a pair).
        pairs: the second text of each row, or None when no pair column was read.
        labels: the label of each row as a string, or None when no label column was read.
        source: the file, for messages.
        lines: the line each row starts on (1-based), for messages about a row.
        label_column: the name of the label column, for messages.
    """

    texts: list[str]
    pairs: list[str] | None
    labels: list[str] | None
    source: str
    lines: list[int] = field(default_factory=list)
    label_column: str | None = None

    def __len__(self) -> int:
        return len(self.texts)


def file_format(path: PathLike) -> str | None:
    """ ".tsv", ".csv" or ".jsonl" from the file name (a `.gz` after it is allowed); None for
    any other name (plain text to `read_texts`)."""
    name = Path(path).name.lower().removesuffix(".gz")
    return next((f for f in FORMATS if name.endswith(f)), None)


def read_labelled(
    path: PathLike,
    text_column: str,
    pair_column: str | None = None,
    label_column: str | None = None,
) -> LabelledData:
    """Read texts (and second texts, and labels) from a `.tsv`, `.csv` or `.jsonl` file.

    Args:
        path: the file; see the module docstring for the formats.
        text_column: the column of the (first) text, e.g. "sentence" or "sentence1".
        pair_column: the column of the second text of a pair (e.g. "sentence2"), or None.
        label_column: the column of the label, or None (e.g. for a GLUE test file). Every row
            then needs a non-empty label.

    Raises:
        DataError: a missing file, an unknown extension, no rows, a column not in the file
            (the message lists those there are), a row with the wrong number of fields, bad
            CSV quoting, invalid UTF-8 or JSON, a text that is not a string, or a missing
            label; the message names the file, line and column.
    """
    path = _check_file(path)
    fmt = file_format(path)
    if fmt is None:
        raise DataError(
            f"{path}: unknown format; name labelled data .tsv (GLUE), .csv or .jsonl "
            "(optionally .gz)"
        )
    columns = [c for c in (text_column, pair_column, label_column) if c is not None]
    texts: list[str] = []
    pairs: list[str] | None = [] if pair_column is not None else None
    labels: list[str] | None = [] if label_column is not None else None
    lines: list[int] = []
    for lineno, values in _rows(path, fmt, columns):
        row = dict(zip(columns, values, strict=True))
        texts.append(_text(path, lineno, text_column, row[text_column]))
        if pair_column is not None and pairs is not None:
            pairs.append(_text(path, lineno, pair_column, row[pair_column]))
        if label_column is not None and labels is not None:
            labels.append(_label(path, lineno, label_column, row[label_column]))
        lines.append(lineno)
    return LabelledData(texts, pairs, labels, str(path), lines, label_column)


def read_texts(
    path: PathLike, text_column: str | None = None, pair_column: str | None = None
) -> LabelledData:
    """Texts to classify: a `.tsv`/`.csv`/`.jsonl` read by columns (as `read_labelled`, no
    labels), or any other file as plain text, one text per line ("-": standard input).

    Plain text keeps blank lines as empty texts, so that line i of the output answers line i
    of the input.

    Raises:
        DataError: as `read_labelled`; also a table without `text_column`, a pair column asked
            of plain text, or a file with nothing in it.
    """
    fmt = None if str(path) == "-" else file_format(path)
    if fmt is not None:
        if text_column is None:
            raise DataError(
                f"{path}: a {fmt} file needs the name of its text column (and of the pair "
                "column for pairs); give text_column"
            )
        return read_labelled(path, text_column, pair_column)
    if pair_column is not None:
        raise DataError(
            f"{path}: plain text holds one text per line, not pairs; give pairs in a .tsv, "
            f".csv or .jsonl file with a {pair_column!r} column"
        )
    file = None if str(path) == "-" else _check_file(path)
    source = "<stdin>" if file is None else str(file)
    rows = list(_iter_lines(file))
    if not rows:
        raise DataError(f"{source}: the file is empty; give one text per line")
    return LabelledData(
        texts=[line for _, line in rows],
        pairs=None,
        labels=None,
        source=source,
        lines=[lineno for lineno, _ in rows],
    )


# ------------------------------------------------------------------------------- reading rows
def _rows(path: Path, fmt: str, columns: Sequence[str]) -> Iterator[tuple[int, list[Any]]]:
    """(line, values of `columns`) for each row; raises DataError for an empty file."""
    reader = _json_rows if fmt == ".jsonl" else _table_rows
    empty = True
    for row in reader(path, fmt, columns):
        empty = False
        yield row
    if empty:
        raise DataError(f"{path}: no rows (the file is empty or has only a header); give data")


def _table_rows(path: Path, fmt: str, columns: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """Rows of a .tsv or .csv file, located by the header's column names."""
    records = _tsv_records(path) if fmt == ".tsv" else _csv_records(path)
    header: list[str] | None = None
    where: list[int] = []  # index of each requested column in a row
    for lineno, fields in records:
        if header is None:
            header, where = fields, _column_indices(path, lineno, fields, columns)
            continue
        if len(fields) != len(header):
            raise DataError(_ragged(path, lineno, fields, header, fmt))
        yield lineno, [fields[i] for i in where]


def _tsv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    # Split on tabs and nothing else: csv.QUOTE_NONE, but also immune to a lone "\r" inside a
    # field, which the csv module would take for the end of the line.
    for lineno, line in _iter_lines(path):
        if line.strip():
            yield lineno, line.split("\t")


def _csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    # csv needs the newlines back to keep them inside a quoted field that spans lines.
    reader = csv.reader((line + "\n" for _, line in _iter_lines(path)), strict=True)
    while True:
        start = reader.line_num + 1  # a record may span lines; messages give its first
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(
                f"{path}:{start}: bad CSV ({e}); quote a field with commas, quotes or newlines "
                'in "…" and double the quotes inside it ("")'
            ) from None
        if any(f.strip() for f in fields):  # a blank line reads as [] (or [""])
            yield start, fields


def _column_indices(
    path: Path, lineno: int, header: list[str], columns: Sequence[str]
) -> list[int]:
    """Where each requested column is in the header."""
    indices = []
    for column in columns:
        count = header.count(column)
        if count == 0:
            raise DataError(
                f"{path}:{lineno}: no column {column!r} in the header; the columns are "
                f"{', '.join(map(repr, header))}"
            )
        if count > 1:
            raise DataError(
                f"{path}:{lineno}: column {column!r} appears {count} times in the header; "
                "rename the copies"
            )
        indices.append(header.index(column))
    return indices


def _ragged(path: Path, lineno: int, fields: list[str], header: list[str], fmt: str) -> str:
    """The message for a row whose number of fields differs from the header's."""
    if len(fields) < len(header):
        what = f"nothing under {header[len(fields)]!r}"
    else:
        what = "more fields than columns"
    advice = (
        "GLUE-style .tsv is not quoted, so a tab inside a text splits it: remove tabs from texts"
        if fmt == ".tsv"
        else 'quote fields that hold commas: "a, b"'
    )
    return f"{path}:{lineno}: {len(fields)} fields, the header has {len(header)} ({what}); {advice}"


def _json_rows(path: Path, fmt: str, columns: Sequence[str]) -> Iterator[tuple[int, list[Any]]]:
    """Rows of a .jsonl file: one object per non-blank line, values as JSON gives them."""
    for lineno, line in _iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno}); a .jsonl file "
                "holds one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}:{lineno}: expected a JSON object ({{...}}), found {_json_type(obj)}; "
                "a .jsonl file holds one object per line"
            )
        for column in columns:
            if column not in obj:
                raise DataError(
                    f"{path}:{lineno}: no column {column!r}; this line has "
                    f"{', '.join(map(repr, obj)) or 'no keys'}"
                )
        yield lineno, [obj[c] for c in columns]


# ------------------------------------------------------------------------------ values
def _text(path: Path, lineno: int, column: str, value: Any) -> str:
    """A text value; only JSON can give a non-string, and a number is no text."""
    if not isinstance(value, str):
        raise DataError(
            f"{path}:{lineno}: column {column!r} is {_json_type(value)}, not text; "
            "write texts as JSON strings"
        )
    return value


def _label(path: Path, lineno: int, column: str, value: Any) -> str:
    """A label as a string: surrounding spaces dropped, JSON numbers and booleans as written."""
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)  # 1 → "1", true → "true" (str() would give "True")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if value is None or isinstance(value, str):
        raise DataError(
            f"{path}:{lineno}: column {column!r} is empty; every row needs a label (read "
            "without label_column for unlabelled data)"
        )
    raise DataError(
        f"{path}:{lineno}: column {column!r} is {_json_type(value)}; a label is a string, "
        "number or boolean"
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


# ------------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class LabelSet:
    """The classes of a task: label strings ↔ ids 0 .. len - 1, in sorted order.

    Sorted, not first-seen, so that the same labels always get the same ids whatever the order
    of the training file. Labels that are all integers sort by value ("2" before "10"), so
    integer labels 0 .. n - 1 get ids equal to themselves; others sort as strings.

    Example::

        labels = LabelSet.from_labels(["neutral", "entailment", "contradiction"])
        labels.names                  # ("contradiction", "entailment", "neutral")
        labels.ids(["neutral"])       # [2]
        LabelSet.from_json(labels.to_json()) == labels
    """

    names: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if not names:
            raise ValueError("a LabelSet needs at least one label")
        if len(set(names)) != len(names):
            raise ValueError(f"labels repeat: {list(names)}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(names)})

    @classmethod
    def from_labels(cls, labels: Iterable[str] | LabelledData) -> LabelSet:
        """The distinct labels of `labels` (or of a `LabelledData`'s labels), sorted.

        Raises:
            DataError: there are no labels (an empty list, or data read without labels).
        """
        source = "labels"
        if isinstance(labels, LabelledData):
            source = labels.source
            if labels.labels is None:
                raise DataError(f"{source}: read without a label column; give label_column")
            labels = labels.labels
        distinct = set(labels)
        if not distinct:
            raise DataError(f"{source}: no labels; give labelled training data")
        if all(_is_integer(name) for name in distinct):
            return cls(tuple(sorted(distinct, key=lambda name: (int(name), name))))
        return cls(tuple(sorted(distinct)))

    def __len__(self) -> int:
        return len(self.names)

    def ids(
        self,
        labels: Sequence[str] | LabelledData,
        *,
        source: str | None = None,
        lines: Sequence[int] | None = None,
    ) -> list[int]:
        """The id of each label. Given a `LabelledData`, its file and lines name a bad row.

        Raises:
            DataError: a label not in the set; the message names it, the file and line (when
                known) and the labels there are.
        """
        column = None
        if isinstance(labels, LabelledData):
            if labels.labels is None:
                raise DataError(f"{labels.source}: read without a label column; give label_column")
            source, lines, column = labels.source, labels.lines, labels.label_column
            labels = labels.labels
        try:
            return [self._index[label] for label in labels]
        except KeyError:
            pass
        k, label = next((k, x) for k, x in enumerate(labels) if x not in self._index)
        where = source or "labels"
        if lines is not None and k < len(lines):
            where = f"{where}:{lines[k]}"
        col = f" (column {column!r})" if column else ""
        raise DataError(
            f"{where}: label {label!r}{col} is not one of the model's labels "
            f"({', '.join(map(repr, self.names))}); the model can only predict those"
        )

    def to_json(self) -> dict[str, list[str]]:
        """A JSON-ready dict, `{"labels": [name of id 0, name of id 1, ...]}`."""
        return {"labels": list(self.names)}

    @classmethod
    def from_json(cls, data: Any, source: str = "labels") -> LabelSet:
        """The set `to_json` wrote; `source` names the file in errors.

        Raises:
            ConfigError: not `{"labels": [distinct strings, ...]}`.
        """
        names = data.get("labels") if isinstance(data, dict) else None
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise ConfigError(
                f'{source}: expected {{"labels": [distinct strings, ...]}}, the labels saved '
                "with the model; restore the file"
            )
        return cls(tuple(names))


LABELS_FILE = "labels.json"  # a classifier's class names (text or image), beside its config


def save_labels(labels: LabelSet, directory: str | os.PathLike) -> None:
    """Write `directory/labels.json` (whole or not at all)."""
    from aiayn.io import atomic_write_text

    text = json.dumps(labels.to_json(), indent=2) + "\n"
    atomic_write_text(Path(directory) / LABELS_FILE, text)


def load_labels(directory: str | os.PathLike) -> LabelSet:
    """The `LabelSet` saved in `directory/labels.json`.

    Raises:
        ConfigError: the file is missing, not JSON, or not a list of distinct labels.
    """
    path = Path(directory) / LABELS_FILE
    if not path.is_file():
        raise ConfigError(f"{directory}: no {LABELS_FILE}; is this a classifier's directory?")
    try:
        return LabelSet.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not JSON ({err}); restore the file") from None


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


__all__ = [
    "FORMATS",
    "LabelSet",
    "LabelledData",
    "file_format",
    "read_labelled",
    "read_texts",
]
