"""A user's mistake ends in one line that names the file, line, flag or field and what to do
(exit 2), before any work, and destroys nothing: no traceback, no overwritten input."""

import io
import json
import sys

import pytest

from aiayn.cli import main
from aiayn.config import ModelConfig
from aiayn.data.number_words import make_splits, write_splits
from aiayn.errors import ConfigError
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.train.config import TrainConfig
from aiayn.translator import translate

TINY = ModelConfig.create(
    d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_len=64
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("numbers")
    write_splits(make_splits(200, 8, 8, seed=4), out)
    return out


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    train_translation(
        data / "train.en", data / "train.de", data / "valid.en", data / "valid.de", out, TINY,
        TrainConfig(schedule="inverse_sqrt", warmup_steps=2, max_steps=2, valid_every=2,
                    device="cpu"),
        TranslationConfig(vocab_size=300, max_tokens=400), progress=False,
    )  # fmt: skip
    return out


def run(capsys, *args, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"aiayn {command}: error:"), err
    for part in parts:
        assert part in lines[0], (part, lines[0])


def test_invalid_utf8_on_stdin_names_the_line(model, capsys, monkeypatch):
    code, out, err = run(
        capsys, "translate", "--model", model, stdin=b"seven\n\xff\xfe two\n",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and out == ""
    one_line_error(err, "translate", "<stdin>:2: invalid UTF-8", "iconv")


def test_stdin_lines_match_file_lines(model, tmp_path, capsys, monkeypatch):
    # CRLF, a byte-order mark, a missing final newline: stdin reads as the same file would
    text = "\ufeffseven\r\n\r\ntwo hundred".encode()
    (tmp_path / "in.txt").write_bytes(text)
    code, from_stdin, _ = run(
        capsys, "translate", "--model", model, "--beam", "1", stdin=text, monkeypatch=monkeypatch
    )
    assert code == 0
    code, from_file, _ = run(
        capsys, "translate", "--model", model, "--beam", "1", "--input", tmp_path / "in.txt"
    )
    assert code == 0 and from_stdin == from_file and from_file.count("\n") == 3


@pytest.mark.parametrize("command", ["translate", "evaluate"])
def test_output_that_is_a_directory_or_in_a_missing_one(command, model, data, tmp_path, capsys):
    io_args = (
        ["--input", data / "test.en"]
        if command == "translate"
        else ["--src", data / "test.en", "--ref", data / "test.de"]
    )
    code, _, err = run(capsys, command, "--model", model, *io_args, "--output", tmp_path)
    assert code == 2
    one_line_error(err, command, "is a directory")
    missing = tmp_path / "no" / "out.txt"
    code, _, err = run(capsys, command, "--model", model, *io_args, "--output", missing)
    assert code == 2 and not missing.parent.exists()
    one_line_error(err, command, "does not exist")


@pytest.mark.parametrize("flag", ["--ref", "--src"])
def test_evaluate_never_writes_over_its_inputs(flag, model, data, tmp_path, capsys):
    for name in ("test.en", "test.de"):
        (tmp_path / name).write_bytes((data / name).read_bytes())
    src, ref = tmp_path / "test.en", tmp_path / "test.de"
    target = ref if flag == "--ref" else src
    before = target.read_bytes()
    code, _, err = run(capsys, "evaluate", "--model", model, "--src", src, "--ref", ref,
                       "--output", target)  # fmt: skip
    assert code == 2 and target.read_bytes() == before
    one_line_error(err, "evaluate", f"is the {flag} file")


def test_evaluate_on_an_empty_test_set(model, tmp_path, capsys):
    (tmp_path / "e.en").write_text("")
    (tmp_path / "e.de").write_text("")
    code, out, err = run(
        capsys, "evaluate", "--model", model, "--src", tmp_path / "e.en", "--ref", tmp_path / "e.de"
    )
    assert code == 2 and out == ""
    one_line_error(err, "evaluate", "e.en: empty test set")


def test_evaluate_reads_the_source_from_stdin(model, data, capsys, monkeypatch):
    args = ["evaluate", "--model", model, "--ref", data / "test.de", "--beam", "1"]
    code, from_file, _ = run(capsys, *args, "--src", data / "test.en")
    assert code == 0
    code, from_stdin, _ = run(
        capsys, *args, "--src", "-", stdin=(data / "test.en").read_bytes(), monkeypatch=monkeypatch
    )
    assert code == 0
    scores = [json.loads(text) for text in (from_file, from_stdin)]
    for score in scores:
        del score["seconds"]
    assert scores[0]["sentences"] == 8 and scores[0] == scores[1]
    code, _, err = run(capsys, "evaluate", "--model", model, "--src", "-", "--ref", "-")
    assert code == 2
    one_line_error(err, "evaluate", "cannot both be -")


@pytest.mark.parametrize("alpha", ["nan", "-5", "inf"])
def test_a_length_penalty_that_is_no_penalty(alpha, model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["translate", "--model", str(model), "--alpha", alpha])
    assert exit_.value.code == 2
    assert "argument --alpha: must be a number >= 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"alpha = .*must be a number >= 0"):
        translate(model, ["seven"], alpha=float(alpha))


@pytest.mark.parametrize(("device", "why"), [("foo", "is not a device name"),
                                             ("cuda:7", "devices here: cpu")])  # fmt: skip
def test_a_device_this_machine_lacks(device, why, model, data, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, "translate", "--model", model, "--input", data / "test.en",
                       "--device", device)  # fmt: skip
    assert code == 2
    one_line_error(err, "translate", why)
    out = tmp_path / "run"
    code, _, err = run(
        capsys, "train", "--train-src", data / "train.en", "--train-tgt", data / "train.de",
        "--valid-src", data / "valid.en", "--valid-tgt", data / "valid.de", "--out", out,
        "--preset", "tiny", "--max-steps", "2", "--device", device, "--no-progress",
    )  # fmt: skip
    assert code == 2 and not (out / "checkpoints").exists()
    one_line_error(err, "train", "training option 'device'", why)


def train_args(data, out, *extra):
    return (
        "train", "--train-src", data / "train.en", "--train-tgt", data / "train.de",
        "--valid-src", data / "valid.en", "--valid-tgt", data / "valid.de", "--out", out,
        "--preset", "tiny", "--max-steps", "2", "--device", "cpu", "--no-progress", *extra,
    )  # fmt: skip


def test_errors_blame_the_real_cause(data, tmp_path, capsys):
    (tmp_path / "empty").write_text("\n\n")
    code, _, err = run(capsys, *train_args(data, tmp_path / "a"), "--valid-src", tmp_path / "empty",
                       "--valid-tgt", tmp_path / "empty")  # fmt: skip
    assert code == 2
    one_line_error(err, "train", "empty: no non-empty validation pairs")
    code, _, err = run(capsys, *train_args(data, tmp_path / "b"), "--max-len", "2")
    assert code == 2
    one_line_error(err, "train", "every training pair is longer than max_len=2", "raise --max-len")
    code, _, err = run(capsys, *train_args(data, tmp_path / "c"), "--peak-lr", "-1")
    assert code == 2
    one_line_error(err, "train", "'peak_lr' = -1.0: must be positive")


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [("max_steps", 5.5, "must be an integer"), ("max_steps", True, "must be an integer"),
     ("peak_lr", float("nan"), "must be a number"), ("device", 3, "must be a string"),
     ("compile", "yes", "must be true or false")],
)  # fmt: skip
def test_train_config_from_python_checks_types(field, value, why):
    with pytest.raises(ConfigError, match=f"training option '{field}' = .*: {why}"):
        TrainConfig(**{field: value})


def test_a_model_of_the_wrong_family_is_named_with_its_command(model, data, tmp_path, capsys):
    from aiayn.config import DecoderOnlyConfig

    lm = tmp_path / "lm"
    lm.mkdir()
    DecoderOnlyConfig(vocab_size=50, n_layers=1).save(lm / "config.json")
    for args in (
        ["translate", "--model", lm, "--input", data / "test.en"],
        ["evaluate", "--model", lm, "--src", data / "test.en", "--ref", data / "test.de"],
        ["translate", "--model", model, lm, "--input", data / "test.en"],  # an ensemble
        ["export", "--model", lm, "--out", tmp_path / "ct2"],
    ):
        code, _, err = run(capsys, *args)
        assert code == 2
        one_line_error(err, args[0], "holds a language model (aiayn generate), not a translation")
    assert not (tmp_path / "ct2").exists()
    code, _, err = run(capsys, "generate", "--model", model, "--prompt", "x")
    assert code == 2
    one_line_error(err, "generate", "holds a translation model (aiayn translate")


@pytest.mark.parametrize("when", ["translating", "writing"])
def test_ctrl_c_leaves_no_partial_output_and_exits_130(when, model, data, tmp_path, capsys,
                                                       monkeypatch):  # fmt: skip
    import aiayn.io
    import aiayn.translator

    out = tmp_path / "out.de"
    out.write_text("the user's old file\n")
    if when == "translating":

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(aiayn.translator, "translate", interrupted)
    else:  # Ctrl-C halfway through writing the output file
        real_fsync = aiayn.io.os.fsync

        def fsync_then_interrupt(fd):
            real_fsync(fd)
            raise KeyboardInterrupt

        monkeypatch.setattr(aiayn.io.os, "fsync", fsync_then_interrupt)
    code, stdout, err = run(capsys, "translate", "--model", model, "--beam", "1", "--input",
                            data / "test.en", "--output", out)  # fmt: skip
    assert code == 130 and stdout == "" and "interrupted" in err
    assert out.read_text() == "the user's old file\n"  # untouched, not half-replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.de"]  # no temporary file left


def test_a_missing_input_beside_an_existing_output_is_named(model, tmp_path, capsys):
    out = tmp_path / "out.de"
    out.write_text("old\n")
    code, _, err = run(capsys, "evaluate", "--model", model, "--src", tmp_path / "nope.en",
                       "--ref", tmp_path / "nope.de", "--output", out)  # fmt: skip
    assert code == 2 and out.read_text() == "old\n"
    one_line_error(err, "evaluate", "nope.en: no such file")
