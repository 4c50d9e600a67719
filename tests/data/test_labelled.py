"""Labelled text for classification: .tsv (GLUE), .csv, .jsonl, .gz, plain text, labels, errors."""

import gzip
import json

import pytest

from aiayn.data.labelled import LabelledData, LabelSet, file_format, read_labelled, read_texts
from aiayn.errors import ConfigError, DataError

# GLUE's TSVs are unquoted: quotes are ordinary characters, even unbalanced ones.
GLUE_TSV = (
    "sentence\tlabel\n"
    "it 's a charming and often affecting journey . \t1\n"
    'the " best " movie " of the year\t1\n'
    '"unflinchingly bleak and desperate \t0\n'
    'a "quoted" line with, commas\t0\n'
)


def write(path, text, encoding="utf-8"):
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding=encoding, newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding=encoding, newline="")
    return path


def error(fn, *args, **kwargs) -> str:
    """The message of the DataError `fn` raises; checked to be one line."""
    with pytest.raises(DataError) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------ formats
def test_glue_tsv_keeps_bare_quotes(tmp_path):
    data = read_labelled(write(tmp_path / "train.tsv", GLUE_TSV), "sentence", label_column="label")
    assert data.texts == [
        "it 's a charming and often affecting journey . ",
        'the " best " movie " of the year',
        '"unflinchingly bleak and desperate ',
        'a "quoted" line with, commas',
    ]
    assert data.labels == ["1", "1", "0", "0"] and data.pairs is None
    assert data.lines == [2, 3, 4, 5] and data.source == str(tmp_path / "train.tsv")
    assert len(data) == 4 and data.label_column == "label"


def test_tsv_pairs_by_column_name_gz_crlf_and_blank_lines(tmp_path):
    text = (
        "index\tsentence1\tsentence2\tgold_label\r\n"
        "0\tA man plays.\tSomeone plays.\tentailment\r\n"
        "\r\n"
        '1\tA dog runs.\tA cat "sleeps".\tcontradiction\r\n'
    )
    path = write(tmp_path / "dev_matched.tsv.gz", text)
    data = read_labelled(path, "sentence1", "sentence2", "gold_label")
    assert data.texts == ["A man plays.", "A dog runs."]
    assert data.pairs == ["Someone plays.", 'A cat "sleeps".']
    assert data.labels == ["entailment", "contradiction"] and data.lines == [2, 4]
    unlabelled = read_labelled(path, "sentence2")
    assert unlabelled.labels is None and unlabelled.texts == data.pairs


def test_csv_with_quoting(tmp_path):
    text = (
        "id,text,label\n"
        '1,"Hello, world",pos\n'
        '2,"She said ""hi""",neg\n'
        '3,"two\nlines",pos\n'
        "4,plain,neg\n"
    )
    for name in ("data.csv", "data.csv.gz"):
        data = read_labelled(write(tmp_path / name, text), "text", label_column="label")
        assert data.texts == ["Hello, world", 'She said "hi"', "two\nlines", "plain"]
        assert data.labels == ["pos", "neg", "pos", "neg"]
        assert data.lines == [2, 3, 4, 6]  # a record spanning lines counts from its first


def test_jsonl_numeric_and_boolean_labels(tmp_path):
    rows = [
        {"premise": "p1", "hypothesis": "h1", "label": 1},
        {"premise": "p2", "hypothesis": "h2", "label": 0, "extra": [1, 2]},
        {"label": True, "hypothesis": "h3", "premise": "p3"},
        {"premise": "p4", "hypothesis": "h4", "label": " neutral "},
    ]
    text = (
        "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + "\n".join(map(json.dumps, rows[2:]))
    )
    for name in ("rte.jsonl", "rte.jsonl.gz"):
        data = read_labelled(write(tmp_path / name, text), "premise", "hypothesis", "label")
        assert data.texts == ["p1", "p2", "p3", "p4"] and data.pairs == ["h1", "h2", "h3", "h4"]
        assert data.labels == ["1", "0", "true", "neutral"]
        assert data.lines == [1, 2, 4, 5]


def test_utf8_bom_and_non_ascii(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffsentence\tlabel\nCafé 日本語\tjá\n".encode())
    data = read_labelled(path, "sentence", label_column="label")
    assert data.texts == ["Café 日本語"] and data.labels == ["já"]


def test_file_format():
    assert file_format("a/train.TSV") == ".tsv" and file_format("x.csv.gz") == ".csv"
    assert file_format("x.jsonl") == ".jsonl"
    assert file_format("x.txt") is None and file_format("x.gz") is None


# ------------------------------------------------------------------------------ read_texts
def test_read_texts_plain_keeps_blank_lines(tmp_path):
    path = write(tmp_path / "inputs.txt", "first text\n\n  third, with spaces\n")
    data = read_texts(path)
    assert data.texts == ["first text", "", "  third, with spaces"]
    assert data.pairs is None and data.labels is None and data.lines == [1, 2, 3]
    gz = write(tmp_path / "inputs.txt.gz", "a\n\nb\n")
    assert read_texts(gz).texts == ["a", "", "b"]


def test_read_texts_by_columns(tmp_path):
    path = write(tmp_path / "test.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n1\tc\td\n")
    data = read_texts(path, "sentence1", "sentence2")
    assert (data.texts, data.pairs, data.labels) == (["a", "c"], ["b", "d"], None)
    message = error(read_texts, path)
    assert str(path) in message and "text_column" in message
    message = error(read_texts, write(tmp_path / "p.txt", "x\n"), pair_column="sentence2")
    assert "p.txt" in message and "'sentence2'" in message and "not pairs" in message


def test_read_texts_from_stdin(monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"one\n\nthree\n")))
    data = read_texts("-")
    assert data.texts == ["one", "", "three"] and data.source == "<stdin>"


# ---------------------------------------------------------------------------------- errors
def test_missing_and_empty_files(tmp_path):
    message = error(read_labelled, tmp_path / "nope.tsv", "sentence")
    assert str(tmp_path / "nope.tsv") in message and "no such file" in message
    for name, text in [("e.tsv", ""), ("h.tsv", "sentence\tlabel\n"), ("e.jsonl", "\n\n")]:
        message = error(read_labelled, write(tmp_path / name, text), "sentence")
        assert message.startswith(f"{tmp_path / name}: no rows"), message
    message = error(read_texts, write(tmp_path / "empty.txt", ""))
    assert "empty.txt: the file is empty" in message
    message = error(read_labelled, write(tmp_path / "x.txt", "a\n"), "sentence")
    assert "x.txt: unknown format" in message and ".tsv" in message


def test_missing_column_lists_the_columns(tmp_path):
    path = write(tmp_path / "train.tsv", GLUE_TSV)
    message = error(read_labelled, path, "sentence", label_column="gold_label")
    assert message.startswith(f"{path}:1: no column 'gold_label'")
    assert "'sentence', 'label'" in message
    csv_path = write(tmp_path / "d.csv", "text,label\na,b\n")
    assert "d.csv:1: no column 'txt'" in error(read_labelled, csv_path, "txt")
    jsonl = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    message = error(read_labelled, jsonl, "text", label_column="label")
    assert message.startswith(f"{jsonl}:2: no column 'label'") and "'text'" in message


def test_ragged_rows(tmp_path):
    path = write(tmp_path / "train.tsv", "a\tb\tc\td\n1\t2\t3\t4\n1\t2\t3\n")
    message = error(read_labelled, path, "a")
    assert message.startswith(f"{path}:3: 3 fields, the header has 4 (nothing under 'd')")
    assert "tab" in message
    path = write(tmp_path / "train.csv", "a,b\n1,2\n1,2,3\n")
    message = error(read_labelled, path, "a")
    assert message.startswith(f"{path}:3: 3 fields, the header has 2 (more fields")
    assert "quote" in message


def test_bad_csv_quoting(tmp_path):
    path = write(tmp_path / "q.csv", 'text,label\n"ok",1\n"never closed,1\nmore,0\n')
    message = error(read_labelled, path, "text")
    assert message.startswith(f"{path}:3: bad CSV")


def test_invalid_utf8_names_file_and_line(tmp_path):
    for name in ("latin.tsv", "latin.csv", "latin.jsonl", "latin.txt"):
        path = tmp_path / name
        rows = {
            ".tsv": b"text\tlabel\nok\t1\nCaf\xe9\t0\n",
            ".csv": b"text,label\nok,1\nCaf\xe9,0\n",
            ".jsonl": b'{"text": "ok"}\n{"text": "Caf\xe9"}\n',
            ".txt": b"ok\nCaf\xe9\n",
        }[path.suffix]
        path.write_bytes(rows)
        line = 2 if path.suffix in (".jsonl", ".txt") else 3
        reader = read_texts if path.suffix == ".txt" else read_labelled
        args = () if path.suffix == ".txt" else ("text",)
        message = error(reader, path, *args)
        assert message.startswith(f"{path}:{line}: invalid UTF-8"), message


def test_bad_json_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 2}\n')
    message = error(read_labelled, path, "text", label_column="label")
    assert message.startswith(f"{path}:2: invalid JSON") and "column" in message
    path = write(tmp_path / "l.jsonl", '["text", "label"]\n')
    assert error(read_labelled, path, "text").startswith(f"{path}:1: expected a JSON object")
    path = write(tmp_path / "n.jsonl", '{"text": 5}\n')
    message = error(read_labelled, path, "text")
    assert message.startswith(f"{path}:1: column 'text' is a number, not text")


def test_missing_or_empty_labels(tmp_path):
    cases = {
        "e.tsv": "text\tlabel\na\t1\nb\t \n",
        "e.csv": 'text,label\na,1\nb,""\n',
        "e.jsonl": '{"text": "a", "label": 1}\n{"text": "b", "label": null}\n',
        "s.jsonl": '{"text": "a", "label": 1}\n{"text": "b", "label": ""}\n',
    }
    for name, text in cases.items():
        path = write(tmp_path / name, text)
        message = error(read_labelled, path, "text", label_column="label")
        line = 3 if path.suffix in (".tsv", ".csv") else 2  # tables have a header line
        assert message.startswith(f"{path}:{line}: column 'label' is empty"), message
    path = write(tmp_path / "o.jsonl", '{"text": "a", "label": {"x": 1}}\n')
    message = error(read_labelled, path, "text", label_column="label")
    assert message.startswith(f"{path}:1: column 'label' is an object")


# ---------------------------------------------------------------------------------- labels
def test_label_set_is_sorted_and_maps_ids():
    labels = LabelSet.from_labels(["neutral", "entailment", "contradiction", "neutral"])
    assert labels.names == ("contradiction", "entailment", "neutral") and len(labels) == 3
    assert labels.ids(["neutral", "contradiction"]) == [2, 0]
    # Same labels in another order: same ids.
    assert LabelSet.from_labels(["contradiction", "neutral", "entailment"]) == labels
    # Integer labels sort by value, so label k gets id k.
    numeric = LabelSet.from_labels([str(k) for k in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)])
    assert numeric.names == tuple(str(k) for k in range(11))
    assert LabelSet.from_labels(["1", "01"]).names == ("01", "1")  # ties: deterministic


def test_label_set_json_round_trip():
    labels = LabelSet.from_labels(["b", "a"])
    data = json.loads(json.dumps(labels.to_json()))
    assert data == {"labels": ["a", "b"]}
    assert LabelSet.from_json(data) == labels
    for bad in ({"labels": []}, {"labels": ["a", "a"]}, {"labels": [1]}, ["a"], None):
        with pytest.raises(ConfigError, match=r"config\.json: expected") as err:
            LabelSet.from_json(bad, source="config.json")
        assert "\n" not in str(err.value)


def test_unseen_label_names_file_line_and_known_labels(tmp_path):
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1\n")
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\na\t1\n\nb\t2\n")
    labels = LabelSet.from_labels(read_labelled(train, "sentence", label_column="label"))
    data = read_labelled(dev, "sentence", label_column="label")
    message = error(labels.ids, data)
    assert message.startswith(f"{dev}:4: label '2' (column 'label') is not one of")
    assert "('0', '1')" in message
    message = error(labels.ids, ["0", "x"], source="dev.tsv", lines=[2, 7])
    assert message.startswith("dev.tsv:7: label 'x'")
    assert error(labels.ids, ["nope"]).startswith("labels: label 'nope'")


def test_label_set_needs_labels(tmp_path):
    data = LabelledData(texts=["a"], pairs=None, labels=None, source="x.tsv")
    assert "x.tsv: read without a label column" in error(LabelSet.from_labels, data)
    assert "x.tsv: read without a label column" in error(LabelSet(("a",)).ids, data)
    assert "no labels" in error(LabelSet.from_labels, [])
