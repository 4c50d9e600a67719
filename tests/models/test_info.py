"""model-info for every family: parameter breakdown, FLOPs (checked against torch's counter),
shape trace, and the CLI over presets and model directories."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from aiayn.cli import main
from aiayn.config import DecoderOnlyConfig
from aiayn.models import DecoderOnly, EncoderDecoder, presets, save_pretrained
from aiayn.models.info import (
    estimate_flops,
    estimate_lm_flops,
    flops_per_token,
    parameter_breakdown,
    trace_shapes,
)

from conftest import random_ids, small_config


@pytest.mark.parametrize("tying", ["all", "none"])
def test_breakdown_adds_up_and_counts_tied_matrix_once(tying):
    model = EncoderDecoder(small_config(tie_embeddings=tying))
    parts = parameter_breakdown(model)
    assert parts["total"] == model.num_parameters()
    assert sum(v for k, v in parts.items() if k != "total") == parts["total"]
    assert parts["output"] == (0 if tying == "all" else 50 * 32)
    assert parts["embeddings"] == (50 * 32 if tying == "all" else 2 * 50 * 32)


@pytest.mark.parametrize("src_len, tgt_len", [(7, 5), (12, 12)])
def test_flop_estimate_matches_torch_flop_counter(src_len, tgt_len):
    cfg = small_config(attention_impl="math", src_vocab_size=50, d_ff=48)
    model = EncoderDecoder(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(random_ids(1, src_len), random_ids(1, tgt_len))
    assert estimate_flops(cfg, src_len, tgt_len).forward == counter.get_total_flops()


def test_flops_per_token_scale_like_2n_for_short_sequences():
    cfg = presets.base()
    est = estimate_flops(cfg, 1, 1)
    with torch.device("meta"):
        n = EncoderDecoder(cfg.replace(tie_embeddings="none")).num_parameters()
    embeddings = 2 * cfg.src_vocab_size * cfg.d_model  # looked up, not multiplied
    # with S = T = 1 attention is negligible: forward ≈ 2 × (matmul parameters)
    assert est.forward == pytest.approx(2 * (n - embeddings), rel=0.01)


def test_shape_trace_names_each_step_with_the_right_shape():
    cfg = presets.tiny(vocab_size=100)  # d_model 128, 4 heads, d_ff 512
    B, S, T, H, Dh = 2, 7, 5, 4, 32
    steps = trace_shapes(cfg, batch=B, src_len=S, tgt_len=T)
    by: dict = {}
    for s in steps:  # first occurrence (the shared embedding runs for source, then target)
        by.setdefault((s.module, s.name), s.shape)
    enc, cross = "encoder.layers.0.self_attn", "decoder.layers.1.cross_attn"
    assert by[("encoder.embed = decoder.embed", "embedding lookup × √d_model")] == (B, S, 128)
    assert by[(enc, "Q = x·W_Q, split into heads")] == (B, H, S, Dh)
    assert by[(enc, "scores QKᵀ/√d_k")] == (B, H, S, S)
    assert by[(enc, "merge heads (concat)")] == (B, S, 128)
    assert by[("encoder.layers.1.ffn", "FFN inner max(0, x·W1 + b1)")] == (B, S, 512)
    assert by[(cross, "K = x·W_K, split into heads")] == (B, H, S, Dh)
    assert by[(cross, "weights softmax(scores)")] == (B, H, T, S)
    assert by[("generator", "logits x·Eᵀ")] == (B, T, 100)
    # in order: the embedding comes first and the logits last
    assert steps[0].name.startswith("embedding") and steps[-1].name.startswith("logits")


# --- every family: the decoder-only model and the CLI over presets and directories ------------


def lm(**overrides) -> DecoderOnly:
    fields = dict(vocab_size=50, n_layers=2, d_model=32, n_heads=4, d_ff=48, dropout=0.0)
    return DecoderOnly(DecoderOnlyConfig.create(**{**fields, **overrides}))


@pytest.mark.parametrize("tied", [True, False])
def test_decoder_only_breakdown_adds_up(tied):
    model = lm(tie_embeddings=tied, max_len=16)
    parts = parameter_breakdown(model)
    assert set(parts) == {"embeddings", "decoder", "output", "total"}
    assert parts["total"] == model.num_parameters()
    assert parts["embeddings"] == 50 * 32 + 16 * 32  # tokens + learned positions
    assert parts["output"] == (0 if tied else 50 * 32)


@pytest.mark.parametrize("seq_len", [1, 9])
@pytest.mark.parametrize("tied", [True, False])
def test_decoder_only_flops_match_torch_flop_counter(seq_len, tied):
    model = lm(tie_embeddings=tied, attention_impl="math").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(random_ids(1, seq_len))
    assert estimate_lm_flops(model.config, seq_len).forward == counter.get_total_flops()
    assert flops_per_token(model.config, seq_len) == estimate_lm_flops(model.config, seq_len)


def test_flops_per_token_picks_each_familys_formula():
    cfg = small_config()
    assert flops_per_token(cfg, 12) == estimate_flops(cfg, 12, 12)
    assert flops_per_token(presets.gpt2(), 12).encoder == 0


def test_decoder_only_shape_trace():
    cfg = presets.gpt2()
    B, T = 2, 5
    by = {(s.module, s.name): s.shape for s in trace_shapes(cfg, batch=B, tgt_len=T)}
    attn = "decoder.layers.0.self_attn"
    assert by[("decoder.embed", "embedding lookup")] == (B, T, 768)  # GPT-2: no √d_model
    assert by[(attn, "scores QKᵀ/√d_k")] == (B, 12, T, T)
    assert by[("decoder.layers.11.ffn", "FFN inner gelu_tanh(x·W1 + b1)")] == (B, T, 3072)
    assert by[("generator", "logits x·Eᵀ")] == (B, T, 50257)
    assert not any(s.module.startswith("encoder") for s in trace_shapes(cfg))


def test_cli_gpt2_preset(capsys):
    assert main(["model-info", "--preset", "gpt2"]) == 0
    out = capsys.readouterr().out
    assert "decoder-only, 12 layers" in out
    assert "124,439,808" in out  # as HF GPT2LMHeadModel
    assert "tied: the embedding matrix" in out
    assert "(2, 12, 5, 5)" in out and "(2, 5, 50257)" in out  # scores, logits
    assert "forward per token" in out


@pytest.mark.parametrize("preset", ["baby-gpt", "gpt-mini"])
def test_cli_lm_presets_json(preset, capsys):
    assert main(["model-info", "--preset", preset, "--seq-len", "3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == "decoder_only" and info["preset"] == preset
    with torch.device("meta"):
        expected = DecoderOnly(presets.get(preset)).num_parameters()
    assert info["parameters"]["total"] == expected
    assert info["flops"]["encoder"] == 0 and info["flops"]["tgt_len"] == 32
    assert info["shape_trace"][-1]["shape"][:2] == [2, 3]


@pytest.mark.parametrize("family", ["encoder_decoder", "decoder_only"])
def test_cli_model_directory_of_any_family(family, tmp_path, capsys):
    model = EncoderDecoder(small_config()) if family == "encoder_decoder" else lm()
    save_pretrained(model, tmp_path)
    assert main(["model-info", "--model", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == family and info["model"] == str(tmp_path)
    assert info["parameters"]["total"] == model.num_parameters()
    assert main(["model-info", "--model", str(tmp_path)]) == 0  # and the text form
    out = capsys.readouterr().out
    assert f"model {tmp_path}: {family.replace('_', '-')}" in out
    assert f"{model.num_parameters():,}" in out


def test_cli_model_directory_errors(tmp_path, capsys):
    assert main(["model-info", "--model", str(tmp_path / "nowhere")]) == 2
    assert "no config.json" in capsys.readouterr().err
    save_pretrained(lm(), tmp_path)
    assert main(["model-info", "--model", str(tmp_path), "--vocab-size", "9"]) == 2
    assert "--vocab-size applies to presets" in capsys.readouterr().err
