"""Masked-LM pretraining: lines packed as BERT lays them out, a loss that falls, validation on
fixed masks, and a resumed run that equals an uninterrupted one."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from aiayn.data.number_words import make_splits, write_splits
from aiayn.errors import ConfigError, DataError
from aiayn.models import presets
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.serialization import load_pretrained
from aiayn.tasks.mlm import MLMConfig, train_mlm
from aiayn.tasks.mlm.data import pack_lines, pack_pairs
from aiayn.tasks.mlm.task import MLMTask
from aiayn.tokenizers.bert import load_bert_tokenizer, train_bert_tokenizer
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


def test_pair_packing_lays_out_each_translation_beside_its_line(text, tokenizer):
    en = (text / "train.en").read_text().splitlines()[:50]
    de = (text / "train.de").read_text().splitlines()[:50]
    en[3] = de[3] = ""  # an empty pair is skipped; a pair empty on one side is kept
    de[4] = ""
    packed = pack_pairs(tokenizer, en, de, context=12)
    kept = [i for i in range(50) if i != 3]
    assert len(packed) == len(kept)
    for ids, segments, words, i in zip(packed.ids, packed.segments, packed.words, kept,
                                       strict=True):  # fmt: skip
        expected = tokenizer.encode(en[i], de[i], max_len=12)
        assert ids.tolist() == expected.ids and segments.tolist() == expected.segments
        assert len(ids) <= 12 and (np.flatnonzero(ids == tokenizer.sep_id).size == 2)
        frame = (ids == tokenizer.cls_id) | (ids == tokenizer.sep_id)
        assert (words[frame] == -1).all() and (words[~frame] >= 0).all()
        a, b = words[~frame & (segments == 0)], words[~frame & (segments == 1)]
        assert not (a.size and b.size) or a.max() < b.min()  # word indices never shared by sides
    with pytest.raises(ValueError, match="50 lines but 49"):
        pack_pairs(tokenizer, en, de[:49], context=12)


def lexicon_corpus(out, seed=0):
    """A parallel corpus whose "German" is the English word for word through a fixed random
    lexicon of made-up words: a German word is predictable from its English and from nothing
    else (the words of a sentence are drawn independently)."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = rng.sample([a + b for a in syllables for b in syllables], 60)
    lexicon = dict(zip(words[:30], words[30:], strict=True))
    for split, n in (("train", 2000), ("valid", 100)):
        english = [[rng.choice(words[:30]) for _ in range(5)] for _ in range(n)]
        (out / f"{split}.en").write_text("\n".join(map(" ".join, english)) + "\n")
        german = [" ".join(lexicon[w] for w in sentence) for sentence in english]
        (out / f"{split}.de").write_text("\n".join(german) + "\n")
    return out


def test_parallel_pretraining_learns_to_read_the_other_language(tmp_path):
    """After translation-LM pretraining, a masked German word is predicted from its English
    beside it; with the English hidden the model can only guess: it reads across the pair."""
    text = lexicon_corpus(tmp_path)
    cfg = presets.bert_tiny(n_layers=2, d_model=64, n_heads=2, d_ff=128, max_len=16)
    train = TrainConfig(schedule="inverse_sqrt", peak_lr=6e-3, warmup_steps=10, max_steps=400,
                        valid_every=400, log_every=100, device="cpu", seed=3)  # fmt: skip
    mlm = MLMConfig(vocab_size=200, context=16, max_tokens=1024, parallel=True)
    train_mlm([text / "train.en", text / "train.de"], tmp_path / "tlm", cfg, train, mlm,
              valid_text=[text / "valid.en", text / "valid.de"], progress=False)  # fmt: skip
    model = load_pretrained(tmp_path / "tlm").eval()
    tok = load_bert_tokenizer(tmp_path / "tlm")
    en = (text / "valid.en").read_text().splitlines()
    de = (text / "valid.de").read_text().splitlines()
    hits, total = {"shown": 0, "hidden": 0}, 0
    for enc in tok.encode_batch(en, de):
        ids = torch.tensor([enc.ids])  # (1, T)
        segments = torch.tensor([enc.segments])  # (1, T)
        assert len(enc.ids) == 13  # [CLS] 5 words [SEP] 5 words [SEP]: one piece a word
        english = (segments == 0) & (ids != tok.cls_id) & (ids != tok.sep_id)
        for target in range(7, 12):  # each German word in turn, masked
            for case in hits:
                inputs = ids.clone()
                inputs[0, target] = tok.mask_id
                if case == "hidden":
                    inputs[english] = tok.mask_id
                with torch.no_grad():
                    logits = model(inputs, segments)  # (1, T, V)
                hits[case] += int(logits[0, target].argmax() == ids[0, target])
            total += 1
    assert hits["shown"] / total > 0.9
    assert hits["hidden"] / total < 0.2  # chance: 1 in 30


def test_parallel_pretraining_refuses_files_that_do_not_pair(text, tmp_path):
    cfg = presets.bert_tiny(n_layers=1, d_model=32, n_heads=2, d_ff=64, max_len=32)
    train = TrainConfig(max_steps=2, device="cpu")
    mlm = MLMConfig(vocab_size=200, context=32, parallel=True)
    with pytest.raises(ConfigError, match=r"two --train-text files.*got 1"):
        train_mlm([text / "train.en"], tmp_path / "a", cfg, train, mlm, progress=False)
    short = tmp_path / "short.de"
    short.write_text("eins\nzwei\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"short\.de has 2"):
        train_mlm([text / "train.en", short], tmp_path / "b", cfg, train, mlm, progress=False)
