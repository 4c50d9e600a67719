"""The language-modelling task: its loss by hand, validation loss/ppl/bpc, a tiny model that
learns (and resumes), and one-line errors for bad text."""

import json
import math
import random

import numpy as np
import pytest
import torch

from aiayn.config import DecoderOnlyConfig
from aiayn.errors import ConfigError, DataError
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.serialization import load_pretrained
from aiayn.tasks.lm import METRICS, LMConfig, LMTask, lm_loss, train_lm
from aiayn.tokenizers import load_lm_tokenizer, train_lm_tokenizer
from aiayn.train.config import TrainConfig

TINY = DecoderOnlyConfig.create(
    vocab_size=100, n_layers=1, d_model=32, n_heads=2, d_ff=64, max_len=32, dropout=0.0,
    activation="gelu_tanh", norm_first=True,
)  # fmt: skip


def corpus(n_lines: int, seed: int = 0) -> str:
    """Text with structure a tiny model learns in a few steps: a small grammar of lines."""
    rng = random.Random(seed)
    who = ["the king", "a fool", "my lord", "the queen", "good sir"]
    verb = ["speaks", "weeps", "laughs", "sleeps", "sings"]
    how = ["softly", "again", "in vain", "at night", "with joy"]
    lines = [f"{rng.choice(who)} {rng.choice(verb)} {rng.choice(how)}." for _ in range(n_lines)]
    return "\n".join(lines) + "\n"


def train_config(**overrides) -> TrainConfig:
    fields = dict(schedule="cosine", peak_lr=1e-2, warmup_steps=5, max_steps=30, valid_every=10,
                  log_every=5, keep_last=2, weight_decay=0.1, clip_norm=1.0,
                  device="cpu")  # fmt: skip
    return TrainConfig(**{**fields, **overrides})


def test_lm_loss_is_the_summed_cross_entropy_of_every_next_token():
    logits = torch.randn(2, 3, 7)
    target = torch.tensor([[1, 6, 0], [3, 3, 5]])
    expected = 0.0
    for b in range(2):
        for t in range(3):
            row = logits[b, t].tolist()
            log_z = math.log(sum(math.exp(x) for x in row))
            expected += log_z - row[target[b, t]]
    out = lm_loss(logits, target)
    assert out.n_tokens == 6
    assert float(out.loss) == pytest.approx(expected, rel=1e-6)
    assert float(out.nll) == pytest.approx(expected, rel=1e-6) and not out.nll.requires_grad
    half = lm_loss(logits.bfloat16(), target)  # computed in fp32 from the bf16 logits
    assert half.loss.dtype == torch.float32
    assert float(half.loss) == pytest.approx(float(lm_loss(logits.bfloat16().float(), target).loss))


def make_task(tmp_path, kind: str, text: str, batch_size: int = 4, **options) -> LMTask:
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    tok = train_lm_tokenizer(kind, tmp_path / "t.txt", vocab_size=280)
    stream = np.array([tok.eot_id, *tok.encode(text), tok.eot_id])  # as a token file frames it
    model = DecoderOnly(TINY.replace(vocab_size=tok.vocab_size)).eval()
    config = LMConfig(tokenizer=kind, batch_size=batch_size, **{"context": 8, **options})
    return LMTask(model, stream, stream, tok, config)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_validation_reports_nats_per_token_ppl_and_bits_per_character(tmp_path, kind):
    text = corpus(12)
    task = make_task(tmp_path, kind, text)
    metrics = task.validate(task.model)
    assert set(metrics) == set(METRICS)
    # every token but the first is a target once: the text's tokens and the closing end-of-text
    n_targets = len(task.valid_tokens) - 1
    assert metrics["ppl"] == pytest.approx(math.exp(metrics["loss"]))
    bpc = metrics["loss"] / math.log(2) * n_targets / len(text)
    assert metrics["bpc"] == pytest.approx(bpc, rel=1e-9)
    if kind == "char":  # one token per character, but the end-of-text target has none
        assert n_targets == len(text) + 1
    else:
        assert n_targets < len(text) / 1.5  # BPE: several characters per token
    # the batch size changes nothing; a limit scores a prefix
    other = make_task(tmp_path, kind, text, batch_size=3).validate(task.model)
    assert other["loss"] == pytest.approx(metrics["loss"], rel=1e-5)
    limited = make_task(tmp_path, kind, text, valid_batches=1)
    first = limited.validate(task.model)
    x, y = next(iter(limited._windows))  # (4, 8): the first batch, by hand
    with torch.no_grad():
        nats = float(lm_loss(task.model(x), y).loss)
    assert first["loss"] == pytest.approx(nats / y.numel(), rel=1e-5)
    chars = len(limited.tokenizer.decode(limited.valid_tokens[1 : 1 + y.numel()].tolist()))
    assert first["bpc"] == pytest.approx(nats / math.log(2) / chars, rel=1e-5)


def test_context_longer_than_the_model_and_a_translation_metric_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="context"):
        make_task(tmp_path, "char", corpus(5), context=64)
    with pytest.raises(ConfigError, match="not a language-model metric"):
        train_lm(tmp_path / "t.txt", tmp_path / "run", TINY, train_config(best_metric="bleu"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny char model trained for 30 steps on ~5 KB of text: (run dir, text file, result)."""
    root = tmp_path_factory.mktemp("lm")
    text = root / "train.txt"
    text.write_text(corpus(200), encoding="utf-8")
    out = root / "run"
    result = train_lm(text, out, TINY, train_config(), LMConfig(batch_size=8), progress=False)
    return out, text, result


def valid_records(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "valid"]


def test_a_tiny_model_learns_and_its_directory_loads(trained):
    out, _, result = trained
    assert result.steps == 30
    losses = [r["loss"] for r in valid_records(out)]
    assert len(losses) == 3
    assert losses[-1] < losses[0] < math.log(TINY.vocab_size)  # better than before and uniform
    assert losses[-1] < losses[0] - 0.2  # 2.44 -> 2.01 nats when written
    for name in ("config.json", "model.safetensors", "tokenizer.json", "task_config.json"):
        assert (out / name).is_file(), name
    assert (out / "data" / "train.tokens").is_file()
    model = load_pretrained(out)
    tok = load_lm_tokenizer(out)
    assert isinstance(model, DecoderOnly) and model.config.vocab_size == tok.vocab_size
    assert tok.kind == "char" and tok.decode(tok.encode("the king")) == "the king"


def test_resume_continues_the_run(trained, tmp_path):
    out, text, _ = trained
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    result = train_lm(text, run, TINY, train_config(max_steps=40), LMConfig(batch_size=8),
                      resume=True, progress=False)  # fmt: skip
    assert result.steps == 40
    steps = [r["step"] for r in valid_records(run)]
    assert steps == [10, 20, 30, 40]
    with pytest.raises(ConfigError, match="--resume"):
        train_lm(text, run, TINY, train_config(), progress=False)  # a fresh run there


def one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_bad_text_gives_one_line_errors(tmp_path):
    cfg = train_config()
    with pytest.raises(DataError) as e:
        train_lm(tmp_path / "missing.txt", tmp_path / "a", TINY, cfg, progress=False)
    assert "no such file" in one_line_error(e)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError) as e:
        train_lm(tmp_path / "empty.txt", tmp_path / "b", TINY, cfg, progress=False)
    assert "empty" in one_line_error(e)
    (tmp_path / "latin1.txt").write_bytes("the king\nsays: ça va\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        train_lm(tmp_path / "latin1.txt", tmp_path / "c", TINY, cfg, progress=False)
    assert "latin1.txt:2: invalid UTF-8" in one_line_error(e)
    (tmp_path / "short.txt").write_text("too short\n")
    with pytest.raises(DataError) as e:  # 12 tokens < one window of context 32 + 1
        train_lm(tmp_path / "short.txt", tmp_path / "d", TINY, cfg, progress=False)
    assert "needs at least 33" in one_line_error(e)
    (tmp_path / "ok.txt").write_text(corpus(6))  # ~150 characters
    with pytest.raises(DataError) as e:  # enough to train, too little for its 10% validation
        train_lm(tmp_path / "ok.txt", tmp_path / "e", TINY, cfg, progress=False)
    assert "validation split" in one_line_error(e)
    with pytest.raises(DataError) as e:
        train_lm(
            tmp_path / "ok.txt",
            tmp_path / "f",
            TINY,
            cfg,
            valid_text=tmp_path / "short.txt",
            progress=False,
        )
    assert "validation text" in one_line_error(e)
