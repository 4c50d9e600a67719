"""model-info: parameter breakdown, FLOPs (checked against torch's counter), shape trace."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from aiayn.models import EncoderDecoder, presets
from aiayn.models.info import estimate_flops, parameter_breakdown, trace_shapes

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
