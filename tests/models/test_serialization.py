"""Model directories: config.json + model.safetensors, tied weights, clear errors."""

import json

import pytest
import torch
from safetensors import safe_open

from aiayn.errors import ConfigError
from aiayn.models import EncoderDecoder, load_pretrained, save_pretrained

from conftest import random_ids, small_config


@pytest.mark.parametrize("tying", ["all", "decoder", "none"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, tying):
    cfg = small_config(tie_embeddings=tying, positional="learned")
    if tying == "decoder":
        cfg = cfg.replace(src_vocab_size=40)
    model = EncoderDecoder(cfg).eval()
    save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "model.safetensors",
    ]  # fmt: skip
    loaded = load_pretrained(tmp_path / "m")
    assert loaded.config == cfg and not loaded.training
    src, tgt = random_ids(2, 5, vocab=40), random_ids(2, 4)
    assert torch.equal(loaded(src, tgt), model(src, tgt))
    if tying == "all":  # tying survives loading: still one tensor
        assert loaded.generator.weight is loaded.encoder.embed.weight


def test_tied_matrix_is_stored_once(tmp_path):
    save_pretrained(EncoderDecoder(small_config()), tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        names = list(f.keys())
    embedding_names = [n for n in names if n.endswith("embed.weight") or "generator" in n]
    assert len(embedding_names) == 1, embedding_names


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no such model directory"):
        load_pretrained(tmp_path / "nope")
    model = EncoderDecoder(small_config())
    save_pretrained(model, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot load weights"):
        load_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="weights file missing"):
        load_pretrained(tmp_path)
    # weights of another shape
    save_pretrained(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["layer"]["d_ff"] = 128
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"does not fit .*config\.json") as err:
        load_pretrained(tmp_path)
    # one line that blames the config and names a tensor with both shapes
    message = str(err.value)
    assert "\n" not in message and "the config builds (128, 32), the file holds (64, 32)" in message
