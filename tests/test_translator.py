"""The Python API: aiayn.translate(model_or_dir, sentences, beam=…)."""

import logging

import pytest
import torch

import aiayn
from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder, save_pretrained
from aiayn.tokenizers import TokenizerPair, train_bpe

LINES = ["ein kleiner Hund läuft", "zwei Männer spielen Fußball", "a small dog runs"] * 20


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    tokenizers = TokenizerPair.shared(train_bpe(iter(LINES), vocab_size=300))
    torch.manual_seed(0)
    cfg = ModelConfig.create(
        src_vocab_size=tokenizers.source.vocab_size, tgt_vocab_size=tokenizers.target.vocab_size,
        d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_len=16,
    )  # fmt: skip
    model = EncoderDecoder(cfg).eval()
    directory = tmp_path_factory.mktemp("model")
    save_pretrained(model, directory)
    tokenizers.save(directory)
    return model, tokenizers, directory


def test_one_output_per_input_in_order_from_a_directory(translator):
    model, tokenizers, directory = translator
    sentences = ["a small dog", "", "zwei Männer", "   "]
    out = aiayn.translate(directory, sentences, beam=2)
    assert len(out) == 4 and out[1] == "" and out[3] == ""
    # the same as translating each alone, and the same with a model object
    assert out[2] == aiayn.translate(model, ["zwei Männer"], beam=2, tokenizers=tokenizers)[0]
    assert aiayn.translate(directory, [], beam=2) == []


def test_over_long_input_is_cut_with_a_warning(translator, caplog):
    model, tokenizers, _ = translator
    with caplog.at_level(logging.WARNING, logger="aiayn.translator"):
        out = aiayn.translate(model, ["dog " * 200, "dog"], beam=1, tokenizers=tokenizers)
    assert len(out) == 2
    assert "input 1 has" in caplog.text and "at most 16" in caplog.text


def test_model_object_needs_its_tokenizers(translator):
    model, _, _ = translator
    with pytest.raises(ValueError, match="tokenizers="):
        aiayn.translate(model, ["x"])
