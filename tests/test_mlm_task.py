"""Masked-LM pretraining: lines packed as BERT lays them out, a loss that falls, validation on
fixed masks, and a resumed run that equals an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiayn.data.number_words import make_splits, write_splits
from aiayn.models import presets
from aiayn.models.encoder_only import EncoderOnly
from aiayn.tasks.mlm import MLMConfig, train_mlm
from aiayn.tasks.mlm.data import pack_lines
from aiayn.tasks.mlm.task import MLMTask
from aiayn.tokenizers.bert import train_bert_tokenizer
from aiayn.train.config import TrainConfig


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    out = tmp_path_factory.mktemp("numbers")
    write_splits(make_splits(400, 40, 8, seed=7), out)
    return out  # train.en, valid.en, …: number words, one per line


@pytest.fixture(scope="module")
def tokenizer(text):
    return train_bert_tokenizer([text / "train.en"], vocab_size=200)


def test_packing_keeps_every_token_in_order_within_context(text, tokenizer):
    lines = (text / "train.en").read_text().splitlines()[:120]
    packed = pack_lines(tokenizer, lines, context=24)
    flat = []
    for ids, segments, words in zip(packed.ids, packed.segments, packed.words, strict=True):
        assert len(ids) <= 24 and ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
        seps = np.flatnonzero(ids == tokenizer.sep_id)
        assert len(seps) in (1, 2)  # [CLS] A [SEP] or [CLS] A [SEP] B [SEP]
        assert (segments[: seps[0] + 1] == 0).all() and (segments[seps[0] + 1 :] == 1).all()
        special = np.isin(ids, sorted(tokenizer.special_ids))
        assert (words[special] == -1).all() and (words[~special] >= 0).all()
        assert (np.diff(words[~special]) >= 0).all()  # words numbered in order, per sequence
        flat += ids[~special].tolist()
    expected = [i for enc in tokenizer.encode_batch(lines) for i in enc.ids[1:-1]]
    assert flat == expected
    assert np.mean([len(ids) for ids in packed.ids]) > 16  # short lines fill sequences


def small_bert(vocab: int) -> EncoderOnly:
    cfg = presets.bert_tiny(vocab_size=vocab, n_layers=1, d_model=32, n_heads=2, d_ff=64,
                            max_len=32)  # fmt: skip
    return EncoderOnly(cfg)


def test_validation_scores_fixed_masks(text, tokenizer):
    lines = (text / "valid.en").read_text().splitlines()
    packed = pack_lines(tokenizer, lines, context=32)
    model = small_bert(tokenizer.vocab_size).eval()
    task = MLMTask(model, packed, packed, tokenizer, MLMConfig(context=32, max_tokens=256))
    first, second = task.validate(model), task.validate(model)
    assert first == second
    assert first["accuracy"] < 0.2 and first["loss"] > 3  # an untrained model guesses


def run(text, out, resume=False, tokenizer=None, **overrides):
    fields = dict(schedule="inverse_sqrt", peak_lr=2e-3, warmup_steps=5, max_steps=24,
                  valid_every=6, log_every=1, device="cpu", seed=3)  # fmt: skip
    fields.update(overrides)
    cfg = presets.bert_tiny(n_layers=1, d_model=32, n_heads=2, d_ff=64, max_len=32)
    return train_mlm(
        [text / "train.en"], out, cfg, TrainConfig(**fields),
        MLMConfig(vocab_size=200, context=32, max_tokens=512), valid_text=[text / "valid.en"],
        resume=resume, progress=False, tokenizer=tokenizer,
    )  # fmt: skip


def valid_records(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "valid"]


def test_pretraining_learns_and_resume_equals_an_uninterrupted_run(text, tokenizer, tmp_path):
    straight = run(text, tmp_path / "straight", tokenizer=tokenizer)
    records = valid_records(tmp_path / "straight")
    assert records[-1]["loss"] < records[0]["loss"] - 0.5
    assert records[-1]["accuracy"] > 20 / 200  # 20× chance over a 200-token vocabulary
    run(text, tmp_path / "resumed", max_steps=12, tokenizer=tokenizer)
    resumed = run(text, tmp_path / "resumed", resume=True)
    assert resumed.best == straight.best
    a, b = (valid_records(tmp_path / name)[-1] for name in ("straight", "resumed"))
    assert a["loss"] == b["loss"] and a["accuracy"] == b["accuracy"]
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (tmp_path / "straight" / name).is_file()
