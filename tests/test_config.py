"""ModelConfig: the paper's defaults, JSON round trip with schema version, clear errors."""

import json

import pytest

from aiayn.config import SCHEMA_VERSION, ModelConfig
from aiayn.errors import ConfigError

from conftest import REPO


def test_defaults_are_the_papers_base_model():
    cfg = ModelConfig()
    assert (cfg.d_model, cfg.n_heads, cfg.layer.d_ff, cfg.n_encoder_layers, cfg.layer.dropout) == (
        512, 8, 2048, 6, 0.1,
    )  # fmt: skip
    assert cfg.head_dim == 64 and not cfg.layer.norm_first and cfg.positional == "sinusoidal"


def test_json_round_trip(tmp_path):
    cfg = ModelConfig.create(d_model=64, n_heads=2, positional="learned", extra={"preset": "x"})
    cfg.save(tmp_path / "config.json")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert ModelConfig.load(tmp_path / "config.json") == cfg
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"d_model": 100, "n_heads": 8}, "divisible by n_heads"),
        ({"dropout": 1.5}, "'dropout'"),
        ({"positional": "sinusoid"}, "must be one of sinusoidal"),
        ({"src_vocab_size": 10, "tgt_vocab_size": 20}, "use 'decoder'"),
        ({"d_model": -1}, "positive integer"),
        ({"d_k": 0}, "'d_k' = 0"),
        ({"d_k": 3, "positional": "rope"}, "even query/key width"),
    ],
)
def test_invalid_fields_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.create(**fields)


def test_load_errors_name_the_file_and_problem(tmp_path):
    path = tmp_path / "config.json"
    with pytest.raises(ConfigError, match="no such config file"):
        ModelConfig.load(path)
    path.write_text("{\n  'bad'\n}")
    with pytest.raises(ConfigError, match=r"config.json:2: invalid JSON"):
        ModelConfig.load(path)
    path.write_text(json.dumps({"d_model": 64}))
    with pytest.raises(ConfigError, match="missing 'schema_version'"):
        ModelConfig.load(path)
    path.write_text(json.dumps({"schema_version": 999}))
    with pytest.raises(ConfigError, match="schema_version 999 is not supported"):
        ModelConfig.load(path)
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "d_modle": 64}))
    with pytest.raises(ConfigError, match=r"unknown field.*d_modle"):
        ModelConfig.load(path)
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "n_heads": 3}))
    with pytest.raises(ConfigError, match=str(path)):
        ModelConfig.load(path)


def test_attention_window_round_trips_and_defaults_to_full_attention(tmp_path):
    assert ModelConfig().layer.attention_window is None  # the paper: full attention
    cfg = ModelConfig.create(d_model=64, n_heads=2, attention_window=3)
    cfg.save(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["layer"]["attention_window"] == 3
    assert ModelConfig.load(tmp_path / "config.json") == cfg
    # a config written before the field existed loads as full attention
    data = ModelConfig().to_dict()
    del data["layer"]["attention_window"]
    assert ModelConfig.from_dict(data).layer.attention_window is None
    assert ModelConfig.from_dict(ModelConfig().to_dict()).layer.attention_window is None


@pytest.mark.parametrize("window", [0, -1, 2.5, True, "4"])
def test_bad_attention_window_names_the_field(window):
    with pytest.raises(ConfigError, match=r"'attention_window'.*(>= 1|an integer)"):
        ModelConfig.create(attention_window=window)


def test_layer_settings_are_nested_once_and_json_names_the_arch(tmp_path):
    from aiayn.config import DecoderOnlyConfig, LayerConfig, load_config

    cfg = ModelConfig.create(d_model=64, n_heads=2, dropout=0.3, n_encoder_layers=1)
    assert cfg.layer == LayerConfig(d_model=64, n_heads=2, dropout=0.3)
    data = cfg.to_dict()
    assert data["arch"] == "encoder_decoder" and data["layer"]["dropout"] == 0.3
    assert "dropout" not in data and "d_model" not in data  # not copied beside the layer
    cfg.save(tmp_path / "ed.json")
    lm = DecoderOnlyConfig.create(vocab_size=65, n_layers=2, d_model=64, n_heads=2)
    lm.save(tmp_path / "lm.json")
    assert load_config(tmp_path / "ed.json") == cfg
    assert load_config(tmp_path / "lm.json") == lm and isinstance(lm, DecoderOnlyConfig)
    # each family starts from its own default layer: GPT-2's switches for the decoder-only
    assert DecoderOnlyConfig.create() == DecoderOnlyConfig()
    assert lm.layer.norm_first and lm.layer.activation == "gelu_tanh"
    assert cfg.replace(dropout=0.2).layer.dropout == 0.2  # flat layer settings route in
    with pytest.raises(ConfigError, match="arch 'decoder_only' is not a encoder_decoder"):
        ModelConfig.load(tmp_path / "lm.json")


def test_schema_1_flat_config_loads_as_encoder_decoder():
    from aiayn.config import load_config

    flat = {"schema_version": 1, "src_vocab_size": 300, "tgt_vocab_size": 300, "d_model": 32,
            "n_heads": 4, "d_ff": 64, "norm_first": True, "attention_window": 3}  # fmt: skip
    cfg = ModelConfig.from_dict(flat)
    assert (cfg.layer.d_model, cfg.layer.norm_first, cfg.layer.attention_window) == (32, True, 3)
    path = REPO / "tests" / "models" / "legacy_v1" / "postln_sinusoidal" / "config.json"
    assert load_config(path).arch == "encoder_decoder"


@pytest.mark.parametrize(
    "layer, message",
    [({"d_modle": 8}, r"unknown field\(s\) layer.d_modle"), ({"d_model": "64"}, "an integer"),
     ({"norm_first": 1}, "true or false"), ({"activation": "tanh"}, "must be one of")],
)  # fmt: skip
def test_bad_layer_fields_in_json_name_the_field(layer, message):
    data = {**ModelConfig().to_dict(), "layer": {**ModelConfig().to_dict()["layer"], **layer}}
    if "d_modle" in layer:
        del data["layer"]["d_model"]
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(data)
