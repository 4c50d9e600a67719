"""The position-wise FFN and its optional dropout on the inner activations."""

import pytest
import torch

from aiayn.config import ModelConfig
from aiayn.errors import ConfigError
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.nn import PositionwiseFeedForward


def test_ffn_is_two_linear_maps_around_relu_at_each_position():
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(8, 32)
    x = torch.randn(2, 5, 8)
    expected = torch.relu(x @ ffn.w_1.weight.T + ffn.w_1.bias) @ ffn.w_2.weight.T + ffn.w_2.bias
    torch.testing.assert_close(ffn(x), expected)
    # Position-wise: each position's output depends on that position alone.
    torch.testing.assert_close(ffn(x[:, 3:4]), ffn(x)[:, 3:4])


def test_activation_dropout_acts_on_the_inner_units_in_training_only():
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(8, 32, dropout=0.5)
    plain = PositionwiseFeedForward(8, 32)
    plain.load_state_dict(ffn.state_dict())
    x = torch.randn(4, 50, 8)
    torch.testing.assert_close(ffn.eval()(x), plain(x))  # the identity in evaluation
    assert not torch.allclose(ffn.train()(x), plain(x))
    # Where every inner unit is dropped the output is W2·0 + b2 = b2, not 0 (which dropout on
    # the output would give): with p near 1 that is nearly every position.
    ffn.dropout.p = 0.999
    out = ffn(x)  # (4, 50, 8)
    at_bias = (out == ffn.w_2.bias).all(-1).float().mean()
    assert at_bias > 0.9


def test_activation_dropout_mean_is_unbiased():
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(4, 16, dropout=0.3).train()
    x = torch.randn(1, 1, 4).expand(20000, 1, 4)
    mean = ffn(x).mean(0)
    torch.testing.assert_close(mean, ffn.eval()(x[:1]).squeeze(0), atol=0.05, rtol=0.05)


def test_model_config_carries_activation_dropout_to_every_layer(tmp_path):
    cfg = ModelConfig.create(
        src_vocab_size=20, tgt_vocab_size=20, d_model=16, n_heads=2, d_ff=32,
        n_encoder_layers=2, n_decoder_layers=1, activation_dropout=0.2,
    )  # fmt: skip
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json").layer.activation_dropout == 0.2
    model = EncoderDecoder(cfg)
    ffns = [m for m in model.modules() if isinstance(m, PositionwiseFeedForward)]
    assert len(ffns) == 3 and all(f.dropout.p == 0.2 for f in ffns)
    with pytest.raises(ConfigError, match="'activation_dropout'"):
        cfg.replace(activation_dropout=1.0)
