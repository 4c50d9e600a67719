"""The norms of `LayerConfig.norm`: RMSNorm and the token BatchNorm equal their definitions
(and PyTorch's own where it has one), padding never enters BatchNorm's statistics, and every
family builds and trains with each."""

from __future__ import annotations

import pytest
import torch

from aiayn.config import DecoderOnlyConfig, LayerConfig, ModelConfig
from aiayn.models import presets
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.encoder_only import EncoderOnly
from aiayn.nn.norms import LayerNorm, RMSNorm, TokenBatchNorm, build_norm


def test_rms_norm_is_its_formula_and_torchs():
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-6)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 5, 8) * 4 + 2  # a mean RMSNorm must not remove
    expected = x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * norm.weight
    torch.testing.assert_close(norm(x), expected)
    reference = torch.nn.RMSNorm(8, eps=1e-6)
    reference.weight.data.copy_(norm.weight.data)
    torch.testing.assert_close(norm(x), reference(x))
    assert norm(x).mean().abs() > 0.1  # no centring


def test_layer_norm_keeps_torchs_state_dict_and_output():
    ours, theirs = LayerNorm(8), torch.nn.LayerNorm(8)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(ours(x, real=torch.zeros(2, 3, dtype=torch.bool)), theirs(x))


def test_token_batch_norm_equals_batchnorm1d_over_the_real_tokens():
    torch.manual_seed(0)
    ours, reference = TokenBatchNorm(6), torch.nn.BatchNorm1d(6)
    x = torch.randn(4, 7, 6) * 3 + 1
    real = torch.arange(7)[None, :] < torch.tensor([7, 5, 2, 4])[:, None]  # (B, T)
    out = ours(x, real)
    torch.testing.assert_close(out[real], reference(x[real]))
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(x, real)[real], reference(x[real]))


def test_padding_never_enters_batch_norm_statistics():
    norm = TokenBatchNorm(6)
    x = torch.randn(2, 5, 6)
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    garbage = x.clone()
    garbage[~real] = 1e4
    torch.testing.assert_close(norm(x, real)[real], norm(garbage, real)[real])


def test_build_norm_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="layer, rms or batch"):
        build_norm("group", 8, 1e-5)


def families(norm: str):
    layer = LayerConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, norm=norm)
    return [
        EncoderOnly(presets.bert_tiny(vocab_size=30, n_layers=1, d_model=16, n_heads=2,
                                      d_ff=32, max_len=16, norm=norm, dropout=0.0,
                                      attention_dropout=0.0)),
        DecoderOnly(DecoderOnlyConfig(vocab_size=30, n_layers=1, layer=layer, max_len=16)),
        EncoderDecoder(ModelConfig.create(src_vocab_size=30, tgt_vocab_size=30, d_model=16,
                                          n_heads=2, d_ff=32, n_encoder_layers=1,
                                          n_decoder_layers=1, norm=norm, max_len=16,
                                          norm_first=True)),
    ]  # fmt: skip


@pytest.mark.parametrize("norm", ["rms", "batch"])
def test_every_family_trains_with_each_norm(norm):
    torch.manual_seed(0)
    ids = torch.randint(1, 30, (2, 7))
    for model in families(norm):
        kinds = {type(m).__name__ for m in model.modules()}
        assert {"rms": "RMSNorm", "batch": "TokenBatchNorm"}[norm] in kinds
        assert "LayerNorm" not in kinds or isinstance(model, EncoderOnly)  # BERT's MLM head
        out = model(ids, ids) if isinstance(model, EncoderDecoder) else model(ids)
        out.float().pow(2).mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_batch_norm_makes_a_sentence_depend_on_its_batch_mates_and_layer_norm_does_not():
    """Why Transformers do not use BatchNorm: in training, the output for a sentence changes
    with the other sentences of the batch."""
    torch.manual_seed(0)
    a, b = torch.randint(1, 30, (1, 6)), torch.randint(1, 30, (3, 6))
    for norm, depends in (("layer", False), ("batch", True)):
        model = families(norm)[0].train()  # the encoder-only model, no dropout
        alone, _, _ = model.encode(a)
        together, _, _ = model.encode(torch.cat([a, b]))
        assert torch.allclose(alone[0], together[0], atol=1e-5) != depends, norm
