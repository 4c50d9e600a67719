"""The relative positional schemes (ALiBi, T5's bucketed bias, Shaw et al.'s clipped
distances) and NoPE: each equals a direct computation of its paper's formula on a small case,
depends on positions only through their difference, and works in every family, with
incremental decoding equal to a full pass."""

from __future__ import annotations

import math

import pytest
import torch

from aiayn.config import DecoderOnlyConfig, LayerConfig, ModelConfig
from aiayn.models import presets
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.encoder_only import EncoderOnly
from aiayn.nn.attention import MultiHeadAttention
from aiayn.nn.positional import (
    ALiBiPositionalEncoding,
    ShawRelativePositions,
    T5RelativeBias,
    alibi_slopes,
    build_positional,
    t5_bucket,
)

RELATIVE = ["alibi", "t5", "shaw"]


def test_alibi_slopes_are_the_papers_geometric_sequences():
    assert alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]
    assert alibi_slopes(4).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]
    # 6 heads: the 4 of a power of two, then every other slope of 8 heads' sequence
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]


def test_alibi_bias_by_hand():
    q = torch.zeros(1, 2, 3, 4)  # (B, H, T, Dh): the bias does not read q
    bias = ALiBiPositionalEncoding(2).score_bias(q, 3)  # (H, T, S)
    distance = torch.tensor([[0.0, 1, 2], [1, 0, 1], [2, 1, 0]])
    torch.testing.assert_close(bias, torch.stack([-0.0625 * distance, -(2.0**-8) * distance]))


def test_t5_buckets_equal_hf_t5():
    transformers = pytest.importorskip("transformers")
    attention = transformers.models.t5.modeling_t5.T5Attention
    distance = torch.arange(-300, 301)[None, :]  # j − i
    for buckets, max_distance in ((32, 128), (16, 64)):
        expected = attention._relative_position_bucket(
            distance, bidirectional=True, num_buckets=buckets, max_distance=max_distance
        )
        assert torch.equal(t5_bucket(distance, buckets, max_distance), expected)


def test_t5_buckets_by_hand():
    # 8 buckets: keys before or at the query 0-3, after 4-7; distances 0, 1 exact, then log
    got = t5_bucket(torch.tensor([0, -1, -2, -3, -4, -100, 1, 2, 100]), 8, 4)
    assert got.tolist() == [0, 1, 2, 3, 3, 3, 5, 6, 7]


def shaw_by_hand(x, attn, shaw):
    """Shaw et al.'s equations (3)-(5) with loops over positions, one head at a time."""
    B, T, _ = x.shape
    H, Dh = attn.n_heads, attn.head_dim
    q = attn.w_q(x).view(B, T, H, Dh)
    k = attn.w_k(x).view(B, T, H, Dh)
    v = attn.w_v(x).view(B, T, H, Dh)
    out = torch.zeros(B, T, H, Dh)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                clip = [max(-shaw.k_max, min(shaw.k_max, j - i)) + shaw.k_max for j in range(T)]
                e = torch.stack([q[b, i, h] @ (k[b, j, h] + shaw.keys[clip[j]]) for j in range(T)])
                alpha = (e / math.sqrt(Dh)).softmax(-1)
                out[b, i, h] = sum(alpha[j] * (v[b, j, h] + shaw.values[clip[j]]) for j in range(T))
    return attn.w_o(out.reshape(B, T, H * Dh))


def test_shaw_equals_its_equations():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, impl="auto").eval()
    shaw = ShawRelativePositions(4, k_max=2)
    x = torch.randn(2, 6, 8)
    out, weights = attn(x, positional=shaw)
    assert weights is None  # the weights were needed inside, not asked for
    torch.testing.assert_close(out, shaw_by_hand(x, attn, shaw), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", RELATIVE)
def test_relative_scores_depend_only_on_the_difference_of_positions(kind):
    """Queries at offset … and keys shifted by the same amount: the same bias."""
    torch.manual_seed(0)
    scheme = build_positional(kind, 16, 2, 64)
    if isinstance(scheme, T5RelativeBias):
        torch.nn.init.normal_(scheme.bias.weight)  # zero at initialisation: make it count
    q = torch.randn(1, 2, 5, 8)  # (B, H, T, Dh)
    base = scheme.score_bias(q, 7, offset=0)  # queries 0..4, keys 0..6
    for shift in (1, 9, 40):
        moved = scheme.score_bias(q, 7 + shift, offset=shift)  # queries shift.., keys 0..6+shift
        torch.testing.assert_close(moved[..., shift:], base)


def tiny_layer(**overrides) -> LayerConfig:
    return LayerConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, **overrides)


@pytest.mark.parametrize("kind", RELATIVE)
def test_incremental_decoding_equals_a_full_pass(kind):
    torch.manual_seed(0)
    cfg = DecoderOnlyConfig(vocab_size=30, n_layers=2, layer=tiny_layer(norm_first=True),
                            positional=kind, max_len=32)  # fmt: skip
    model = DecoderOnly(cfg).eval()
    for p in model.parameters():  # T5's table starts at zero: give every scheme weight
        torch.nn.init.normal_(p, std=0.3) if p.dim() == 2 and p.shape[0] < 40 else None
    ids = torch.randint(1, 30, (2, 9))
    full = model(ids)[:, -1]  # (B, V)
    state = model.start(ids[:, :4])
    model.step(state, ids[:, :4])  # the prompt, at once
    for t in range(4, 9):
        step = model.step(state, ids[:, t : t + 1])
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", [*RELATIVE, "none"])
def test_every_family_trains_with_each_scheme(kind):
    torch.manual_seed(0)
    ids = torch.randint(1, 30, (2, 7))
    models = [
        EncoderOnly(presets.bert_tiny(vocab_size=30, n_layers=1, d_model=16, n_heads=2, d_ff=32,
                                      max_len=16, positional=kind)),
        DecoderOnly(DecoderOnlyConfig(vocab_size=30, n_layers=1, layer=tiny_layer(),
                                      positional=kind, max_len=16)),
        EncoderDecoder(ModelConfig.create(src_vocab_size=30, tgt_vocab_size=30, d_model=16,
                                          n_heads=2, d_ff=32, n_encoder_layers=1,
                                          n_decoder_layers=1, positional=kind, max_len=16)),
    ]  # fmt: skip
    for model in models:
        out = model(ids, ids) if isinstance(model, EncoderDecoder) else model(ids)
        out.float().pow(2).mean().backward()
        for name, p in model.named_parameters():
            if "positional" in name or "bias.weight" in name:
                assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_without_positions_an_encoder_cannot_see_order():
    """NoPE in a bidirectional encoder: permuting the tokens permutes the outputs."""
    torch.manual_seed(0)
    cfg = presets.bert_tiny(vocab_size=30, n_layers=2, d_model=16, n_heads=2, d_ff=32,
                            max_len=16, positional="none", type_vocab_size=0)  # fmt: skip
    model = EncoderOnly(cfg).eval()
    ids = torch.randint(1, 30, (1, 8))
    perm = torch.randperm(8)
    hidden, _, _ = model.encode(ids)
    permuted, _, _ = model.encode(ids[:, perm])
    torch.testing.assert_close(permuted, hidden[:, perm], atol=1e-5, rtol=1e-5)
    learned = EncoderOnly(cfg.replace(positional="learned")).eval()
    a, _, _ = learned.encode(ids)
    b, _, _ = learned.encode(ids[:, perm])
    assert not torch.allclose(b, a[:, perm], atol=1e-3)


@pytest.mark.parametrize("task", ["translation", "lm", "mlm"])
def test_the_command_line_selects_any_scheme_and_norm(task, tmp_path):
    from aiayn.cli import build_parser
    from aiayn.cli.train import build_configs

    inputs = {"translation": ["--train-src", "a", "--train-tgt", "b", "--valid-src", "c",
                              "--valid-tgt", "d"], "lm": ["--train-text", "a"],
              "mlm": ["--train-text", "a"]}[task]  # fmt: skip
    for kind in (*RELATIVE, "none"):
        args = ["train", task, *inputs, "--out", str(tmp_path), "--positional", kind]
        model, _, _ = build_configs(build_parser().parse_args([*args, "--norm", "rms"]))
        assert model.positional == kind and model.layer.norm == "rms"
