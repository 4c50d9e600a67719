"""--quantize int8: a dynamic-int8 copy that translates close to fp32, and one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import aiayn
from aiayn.config import ModelConfig
from aiayn.errors import ConfigError
from aiayn.export.quantize import Int8OutputProjection, check_quantize, quantize_model
from aiayn.models import EncoderDecoder, save_pretrained
from aiayn.tokenizers import TokenizerPair, train_bpe

LINES = ["ein kleiner Hund läuft", "zwei Männer spielen Fußball", "a small dog runs"] * 20


def small_model(seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig.create(
        src_vocab_size=60, tgt_vocab_size=60, d_model=32, n_heads=2, d_ff=64,
        n_encoder_layers=1, n_decoder_layers=1, max_len=32,
    )  # fmt: skip
    return EncoderDecoder(cfg).eval()


def test_every_linear_and_the_tied_output_layer_are_int8_and_the_original_is_untouched():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_model(model, "int8")
    assert isinstance(q.generator, Int8OutputProjection)
    assert not any(type(m) is nn.Linear for m in q.modules())  # all replaced
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    src = torch.randint(3, 60, (4, 7))
    tgt = torch.randint(3, 60, (4, 5))
    with torch.inference_mode():
        ref, out = model(src, tgt), q(src, tgt)
    assert out.shape == ref.shape
    # int8 rounding: close, not equal
    assert not torch.equal(out, ref)
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
    assert quantize_model(model, None) is model


def test_translate_with_int8(tmp_path):
    tokenizers = TokenizerPair.shared(train_bpe(iter(LINES), vocab_size=300))
    torch.manual_seed(0)
    cfg = ModelConfig.create(
        src_vocab_size=tokenizers.source.vocab_size, tgt_vocab_size=tokenizers.target.vocab_size,
        d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_len=16,
    )  # fmt: skip
    save_pretrained(EncoderDecoder(cfg).eval(), tmp_path)
    tokenizers.save(tmp_path)
    out = aiayn.translate(tmp_path, ["a small dog", "", "zwei Männer"], beam=2, quantize="int8")
    assert len(out) == 3 and out[1] == ""


def test_bad_quantize_values_name_the_flag():
    with pytest.raises(ConfigError, match="--quantize int4"):
        check_quantize("int4")
    with pytest.raises(ConfigError, match="--quantize int8 runs on the CPU only"):
        check_quantize("int8", "cuda")
    assert check_quantize("none") is None and check_quantize("int8") == "int8"


def test_cli_rejects_quantize_on_a_gpu_in_one_line(tmp_path, capsys):
    from aiayn.cli import main

    code = main(["translate", "--model", str(tmp_path), "--quantize", "int8", "--device", "cuda"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--quantize int8 runs on the CPU only" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["translate", "--model", str(tmp_path), "--quantize", "int4"])
    assert "--quantize" in capsys.readouterr().err
