"""The translation CLI end to end, as a user runs it: train → translate → evaluate → resume."""

import json
import subprocess
import sys

import pytest

from aiayn.data.number_words import make_splits, write_splits


def aiayn(*args, stdin=None, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "aiayn", *map(str, args)],
        input=stdin, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_splits(make_splits(400, 12, 12, seed=5), data)
    out = tmp_path_factory.mktemp("runs") / "model"
    proc = aiayn(
        "train", "--train-src", data / "train.en", "--train-tgt", data / "train.de",
        "--valid-src", data / "valid.en", "--valid-tgt", data / "valid.de", "--out", out,
        "--preset", "tiny", "--vocab-size", "300", "--max-tokens", "500", "--max-steps", "4",
        "--valid-every", "2", "--schedule", "inverse_sqrt", "--peak-lr", "1e-3",
        "--warmup-steps", "2", "--no-progress", "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return data, out, json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_writes_a_complete_model_directory(trained):
    _, out, summary = trained
    assert summary["steps"] == 4 and "max_steps" in summary["stopped_because"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"):
        assert (out / name).is_file()


def test_translate_keeps_one_line_per_input_in_order(trained):
    _, out, _ = trained
    lines = ["three hundred forty-two", "", "seven", "one thousand one hundred"]
    proc = aiayn("translate", "--model", out, "--beam", "2", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    outputs = proc.stdout.split("\n")[:-1]
    assert len(outputs) == len(lines)
    assert outputs[1] == ""  # an empty line gives an empty line
    # order kept: each line translated alone gives the same text
    alone = aiayn("translate", "--model", out, "--beam", "2", stdin=lines[2] + "\n")
    assert alone.stdout == outputs[2] + "\n"


def test_translate_files_and_over_long_input(trained, tmp_path):
    _, out, _ = trained
    src = tmp_path / "in.txt"
    src.write_text("seven\n" + "nine " * 2000 + "\nfive\n")
    proc = aiayn("translate", "--model", out, "--beam", "1", "--input", src,
                 "--output", tmp_path / "out.txt")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "out.txt").read_text().split("\n")[:-1]) == 3


def test_evaluate_prints_one_json_object(trained):
    data, out, _ = trained
    proc = aiayn("evaluate", "--model", out, "--src", data / "test.en", "--ref", data / "test.de",
                 "--beam", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["sentences"] == 12
    assert "tok:13a" in result["bleu_signature"] and "case:lc" in result["bleu_lc_tok_signature"]
    for key in ("bleu", "chrf", "bleu_lc_tok", "seconds"):
        assert isinstance(result[key], float | int)


def test_stopping_flag_reaches_the_beam_search(trained):
    """--stopping k_finished decodes as the Python API's stopping="k_finished" (and evaluate
    reports the rule); an unknown rule is refused by argparse in one line."""
    from aiayn.translator import translate

    data, out, _ = trained
    lines = (data / "test.en").read_text().splitlines()
    proc = aiayn("translate", "--model", out, "--beam", "3", "--stopping", "k_finished",
                 stdin="\n".join(lines) + "\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == translate(out, lines, beam=3, stopping="k_finished")
    proc = aiayn("evaluate", "--model", out, "--src", data / "test.en", "--ref", data / "test.de",
                 "--beam", "3", "--stopping", "k_finished")  # fmt: skip
    assert json.loads(proc.stdout)["stopping"] == "k_finished"
    bad = aiayn("translate", "--model", out, "--stopping", "first", stdin="seven\n")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--stopping" in bad.stderr and "k_finished" in bad.stderr


def test_resume_continues_the_run(trained):
    data, out, _ = trained
    proc = aiayn(
        "train", "--train-src", data / "train.en", "--train-tgt", data / "train.de",
        "--valid-src", data / "valid.en", "--valid-tgt", data / "valid.de", "--out", out,
        "--preset", "tiny", "--max-tokens", "500", "--max-steps", "6", "--valid-every", "2",
        "--schedule", "inverse_sqrt", "--peak-lr", "1e-3", "--warmup-steps", "2",
        "--no-progress", "--resume", "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["translate", "--model", "/nonexistent/model"], "no such model directory"),
        (["evaluate", "--model", "m", "--src", "/nonexistent.en", "--ref", "x"], "nonexistent.en"),
        (["train", "--train-src", "/no/a.en", "--train-tgt", "/no/a.de", "--valid-src", "x",
          "--valid-tgt", "y", "--out", "/tmp/never"], "/no/a.en"),
    ],
)  # fmt: skip
def test_user_mistakes_get_one_line_and_no_traceback(args, message):
    proc = aiayn(*args, stdin="")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_mismatched_evaluate_files_name_both(trained, tmp_path):
    data, out, _ = trained
    ref = tmp_path / "ref.de"
    ref.write_text("eins\n")
    proc = aiayn("evaluate", "--model", out, "--src", data / "test.en", "--ref", ref)
    assert proc.returncode == 2
    assert "test.en has 12 lines" in proc.stderr and "ref.de has 1" in proc.stderr


def test_average_writes_a_usable_model_directory(trained, tmp_path):
    _, run_dir, _ = trained
    proc = aiayn("average", "--run", run_dir, "--last", "2", "--out", tmp_path / "avg")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["averaged_steps"]) == 2
    out = aiayn("translate", "--model", tmp_path / "avg", "--beam", "1", stdin="seven\n")
    assert out.returncode == 0 and len(out.stdout.split("\n")) == 2
    too_many = aiayn("average", "--run", run_dir, "--last", "99", "--out", tmp_path / "x")
    assert too_many.returncode == 2 and "--last must be" in too_many.stderr


def test_several_models_translate_as_an_ensemble(trained, tmp_path):
    from aiayn.tokenizers import TokenizerPair, train_bpe

    data, out, _ = trained
    avg = tmp_path / "avg"  # a second model with the same tokenizer
    assert aiayn("average", "--run", out, "--last", "2", "--out", avg).returncode == 0
    lines = "seven\nthree hundred forty-two\n\nninety\n"
    alone = aiayn("translate", "--model", out, "--beam", "2", stdin=lines)
    twice = aiayn("translate", "--model", out, out, "--beam", "2", stdin=lines)
    assert twice.returncode == 0, twice.stderr
    assert twice.stdout == alone.stdout  # an ensemble of two copies is the model itself
    # A checkpoint directory loads with its run's config and tokenizer; the exported model is
    # the best checkpoint, so both translate alike.
    best = json.loads((out / "checkpoints" / "best.json").read_text())["step"]
    checkpoint = out / "checkpoints" / f"step_{best:08d}"
    proc = aiayn("translate", "--model", checkpoint, "--beam", "2", stdin=lines)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == alone.stdout
    proc = aiayn("evaluate", "--model", out, avg, "--src", data / "test.en",
                 "--ref", data / "test.de", "--beam", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == f"{out} {avg}"
    # A model trained with another tokenizer is refused before any weights are loaded.
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "model.safetensors"):
        (other / name).write_bytes((avg / name).read_bytes())
    TokenizerPair.shared(train_bpe(iter(["zwei drei vier"] * 20), vocab_size=300)).save(other)
    proc = aiayn("translate", "--model", out, other, stdin=lines)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{other}: its tokenizer differs" in proc.stderr


def test_export_to_ctranslate2_translates_like_greedy_aiayn(trained, tmp_path):
    import ctranslate2

    from aiayn.export.ctranslate2 import decoding_options
    from aiayn.tokenizers import TokenizerPair

    data, out, _ = trained
    proc = aiayn("export", "--model", out, "--out", tmp_path / "ct2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["out"] == str(tmp_path / "ct2")
    sentences = (data / "test.en").read_text().splitlines()[:5]
    ours = aiayn("translate", "--model", out, "--beam", "1", stdin="\n".join(sentences) + "\n")
    pair = TokenizerPair.load(out)
    translator = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu")
    theirs = []
    for sentence in sentences:
        pieces = pair.source.tokenize(sentence)  # CTranslate2 appends </s> itself
        options = decoding_options(len(pieces) + 1 + 50, beam_size=1)  # aiayn's own limit
        (result,) = translator.translate_batch([pieces], **options)
        ids = [pair.target.token_to_id(t) for t in result.hypotheses[0]]
        theirs.append(pair.target.decode(ids))
    assert ours.stdout.splitlines() == theirs
    again = aiayn("export", "--model", out, "--out", tmp_path / "ct2")  # exists: refused
    assert again.returncode == 2 and "Traceback" not in again.stderr and "ct2" in again.stderr
