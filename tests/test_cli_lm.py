"""`aiayn generate` (and `aiayn.generate`) end to end on a tiny trained language model, and
one-line errors for bad input."""

import re
import subprocess
import sys

import pytest
import torch

import aiayn
from aiayn.cli import main
from aiayn.config import DecoderOnlyConfig, ModelConfig
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.serialization import save_pretrained
from aiayn.tasks.lm import LMConfig, train_lm
from aiayn.train.config import TrainConfig

TINY = DecoderOnlyConfig.create(
    vocab_size=100, n_layers=1, d_model=32, n_heads=2, d_ff=64, max_len=32, dropout=0.0,
    activation="gelu_tanh", norm_first=True,
)  # fmt: skip
TEXT = "the king speaks softly.\nmy lord weeps at night.\na fool sings with joy.\n" * 30


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A char-level model trained for 10 steps through the Python API."""
    root = tmp_path_factory.mktemp("lm_cli")
    (root / "train.txt").write_text(TEXT, encoding="utf-8")
    cfg = TrainConfig(schedule="constant", peak_lr=1e-2, warmup_steps=2, max_steps=10,
                      valid_every=10, log_every=5)  # fmt: skip
    train_lm(root / "train.txt", root / "run", TINY, cfg, LMConfig(batch_size=8), progress=False)
    return root / "run"


def generate(capsys, *args: str) -> str:
    assert main(["generate", *args]) == 0
    return capsys.readouterr().out


def test_generate_streams_the_prompt_and_its_continuation(model_dir, capsys):
    out = generate(capsys, "--model", str(model_dir), "--prompt", "the king", "--seed", "3",
                   "--max-new-tokens", "40")  # fmt: skip
    expected = aiayn.generate(model_dir, ["the king"], max_new_tokens=40, seed=3)[0]
    assert out == "the king" + expected + "\n"
    assert 0 < len(expected) <= 40  # one character a token, fewer if end-of-text came
    assert generate(capsys, "--model", str(model_dir), "--prompt", "the king", "--seed", "3",
                    "--max-new-tokens", "40") == out  # fmt: skip


def test_num_samples_are_separated_and_equal_the_api_samples(model_dir, capsys):
    out = generate(capsys, "--model", str(model_dir), "--prompt", "a", "--num-samples", "3",
                   "--seed", "5", "--max-new-tokens", "25", "--temperature", "1.5")  # fmt: skip
    samples = aiayn.generate(model_dir, ["a"], 25, temperature=1.5, seed=5, num_samples=3)
    assert out == "\n---\n".join("a" + s for s in samples) + "\n"
    assert len(set(samples)) > 1  # different seeds


def test_temperature_0_is_greedy_and_the_empty_prompt_starts_from_the_start_token(
    model_dir, capsys
):
    greedy = generate(capsys, "--model", str(model_dir), "--temperature", "0",
                      "--max-new-tokens", "30")  # fmt: skip
    assert greedy == generate(capsys, "--model", str(model_dir), "--top-k", "1", "--seed", "9",
                              "--max-new-tokens", "30")  # fmt: skip
    assert greedy == aiayn.generate(model_dir, [""], 30, temperature=0)[0] + "\n"


def test_input_file_gives_one_line_per_sample_whatever_the_batch_size(model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the king\n\nmy lord weeps\n", encoding="utf-8")
    common = ["--model", str(model_dir), "--input", str(prompts), "--num-samples", "2",
              "--seed", "1", "--max-new-tokens", "50", "--temperature", "1.2"]  # fmt: skip
    out = generate(capsys, *common)
    assert generate(capsys, *common, "--batch-size", "1") == out
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == 3 * 2 + 1  # one line per sample, in order
    expected = aiayn.generate(model_dir, ["the king", "", "my lord weeps"], 50,
                              temperature=1.2, seed=1, num_samples=2, batch_size=4)  # fmt: skip
    unescaped = [line.replace("\\n", "\n") for line in lines[:-1]]  # no backslash in TEXT
    assert unescaped == expected
    assert any("\n" in text for text in expected)  # the escaping was exercised


def test_the_api_streams_text_as_tokens_come(model_dir):
    pieces: list[tuple[int, str]] = []
    outputs = aiayn.generate(model_dir, ["my", "the"], 20, seed=2, num_samples=2,
                             batch_size=1, on_text=lambda k, s: pieces.append((k, s)))  # fmt: skip
    assert [k for k, _ in pieces] == sorted(k for k, _ in pieces)  # one output after another
    for k, text in enumerate(outputs):
        assert "".join(s for j, s in pieces if j == k) == text
    assert sum(len(s) == 1 for _, s in pieces) == len(pieces)  # char model: a piece per token


def one_line_error(capsys, *args: str, match: str) -> None:
    assert main(["generate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aiayn generate: error: ") and err.count("\n") == 1, err
    assert match in err, err


def test_bad_input_is_a_one_line_error(model_dir, tmp_path, capsys):
    one_line_error(capsys, "--model", str(tmp_path / "nowhere"), match="no such model directory")
    translation = tmp_path / "translation"
    save_pretrained(EncoderDecoder(ModelConfig.create(
        src_vocab_size=20, tgt_vocab_size=20, d_model=8, n_heads=2, d_ff=16,
        n_encoder_layers=1, n_decoder_layers=1,
    )), translation)  # fmt: skip
    one_line_error(capsys, "--model", str(translation), match="not a language model")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("the king\nça va\n".encode("latin-1"))
    one_line_error(capsys, "--model", str(model_dir), "--input", str(bad), match="latin1.txt:2")
    one_line_error(capsys, "--model", str(model_dir), "--top-p", "1.5", match="top_p")
    one_line_error(capsys, "--model", str(model_dir), "--temperature", "-1", match="temperature")


def test_help_explains_every_flag_with_its_default_and_the_sliding_window():
    proc = subprocess.run([sys.executable, "-m", "aiayn", "generate", "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "window slides" in text and "0 = greedy" in text
    text = text.split("options:")[1]  # the flags' explanations, after the usage
    for flag, default in [("--max-new-tokens N", "[256]"), ("--temperature T", "[1.0]"),
                          ("--top-k K", "[unset]"), ("--top-p P", "[unset]"),
                          ("--repetition-penalty R", "[1.0]"), ("--seed S", "[unset]"),
                          ("--num-samples N", "[1]"), ("--batch-size N", "[64]")]:  # fmt: skip
        assert re.search(re.escape(flag) + r" [^\[]*" + re.escape(default), text), flag
    for flag in ("--model DIR", "--prompt TEXT", "--input FILE", "--device"):
        assert flag in text


def test_generation_with_a_model_object_needs_its_tokenizer(model_dir):
    from aiayn.generator import load_language_model

    model, tokenizer = load_language_model(model_dir)
    with pytest.raises(ValueError, match="tokenizer"):
        aiayn.generate(model, ["x"])
    out = aiayn.generate(model, ["the"], 10, temperature=0, tokenizer=tokenizer)
    assert out == aiayn.generate(model_dir, ["the"], 10, temperature=0)
    assert not model.training and torch.is_inference_mode_enabled() is False
