"""GPT-2 from Hugging Face: the converted DecoderOnly computes HF's logits and generations.

HF models are built from configs with random weights (no downloads), small enough for seconds.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from torch.testing import assert_close

from aiayn.decode.greedy import greedy_search
from aiayn.errors import ConfigError
from aiayn.models import DecoderOnly, load_pretrained, save_pretrained
from aiayn.models.convert import config_from_hf_gpt2, from_hf_gpt2

V, P, NEW = 100, 7, 8  # vocabulary, prompt length, generated tokens


def hf_gpt2(**overrides) -> transformers.GPT2LMHeadModel:
    """A small random GPT-2. No bos/eos: GPT-2's 50256 lies outside this vocabulary, and
    without an eos both sides generate exactly NEW tokens (our pad_id then falls back to 0)."""
    fields = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=V, n_positions=32)
    fields.update(bos_token_id=None, eos_token_id=None, **overrides)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**fields)).eval()
    with torch.no_grad():  # HF zeroes biases and keeps LayerNorms at identity: perturb them all
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def prompts(batch: int = 3, length: int = P) -> torch.Tensor:
    return torch.randint(1, V, (batch, length))  # never 0: our pad_id here


@pytest.mark.parametrize(
    "overrides",
    [{}, {"n_inner": 96}, {"activation_function": "relu"}, {"tie_word_embeddings": False},
     {"layer_norm_epsilon": 1e-3}, {"activation_function": "gelu_pytorch_tanh"}],
    ids=["gpt2", "n_inner", "relu", "untied", "eps", "gelu_pytorch_tanh"],
)  # fmt: skip
@torch.no_grad()
def test_logits_equal_hf(overrides):
    hf = hf_gpt2(**overrides)
    ours = from_hf_gpt2(hf)
    assert isinstance(ours, DecoderOnly) and not ours.training
    ids = torch.randint(0, V, (3, 20))
    assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)
    tied = hf.config.tie_word_embeddings
    assert (ours.generator.weight is ours.decoder.embed.weight) == tied


def test_config_carries_gpt2s_switches():
    cfg = config_from_hf_gpt2(transformers.GPT2Config())  # GPT-2 small
    layer = cfg.layer
    assert (cfg.vocab_size, cfg.n_layers, cfg.max_len) == (50257, 12, 1024)
    assert (layer.d_model, layer.n_heads, layer.d_ff) == (768, 12, 3072)
    assert layer.norm_first and layer.bias and layer.activation == "gelu_tanh"
    assert cfg.positional == "learned" and cfg.tie_embeddings and not cfg.scale_embeddings
    assert layer.layer_norm_eps == 1e-5 and layer.dropout == 0.1
    assert cfg.pad_id == 50256  # no pad token: eos, HF's convention for GPT-2 generation


@torch.no_grad()
def test_greedy_continuation_equals_hf_generate():
    hf = hf_gpt2()
    ours = from_hf_gpt2(hf)
    ids = prompts()
    expected = hf.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW,
        min_new_tokens=NEW, pad_token_id=0,
    )[:, P:]  # fmt: skip
    got = greedy_search(ours, ids, ids, None, torch.full((3,), NEW))
    assert torch.equal(got, expected)


@torch.no_grad()
def test_left_padded_batch_equals_hf_with_attention_mask():
    """HF hides padding with attention_mask; its generate derives position ids from the mask
    (cumsum - 1), so row b's first real token is at position 0 — what our start/step do."""
    hf = hf_gpt2()
    ours = from_hf_gpt2(hf)
    ids = prompts()
    mask = torch.ones_like(ids)
    for b, n_pad in enumerate((0, 3, 5)):
        ids[b, :n_pad], mask[b, :n_pad] = 0, 0  # 0 = our pad_id

    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    hf_next = hf(ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    ours_next = ours.step(ours.start(ids), ids)
    assert_close(ours_next, hf_next, atol=1e-5, rtol=1e-5)

    expected = hf.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=NEW, min_new_tokens=NEW,
        pad_token_id=0,
    )[:, P:]  # fmt: skip
    got = greedy_search(ours, ids, ids, None, torch.full((3,), NEW))
    assert torch.equal(got, expected)


@torch.no_grad()
def test_state_dict_and_config_json_dict_convert_too(tmp_path):
    hf = hf_gpt2()
    ids = torch.randint(0, V, (2, 10))
    expected = hf(ids).logits
    config_json = hf.config.to_dict()
    from_lm_head = from_hf_gpt2(hf.state_dict(), config_json)
    from_base = from_hf_gpt2(hf.transformer.state_dict(), config_json)  # GPT2Model: no prefix
    for model in (from_lm_head, from_base):
        assert_close(model(ids), expected, atol=1e-5, rtol=1e-5)
    save_pretrained(from_base, tmp_path)  # and it is an ordinary aiayn model directory
    assert_close(load_pretrained(tmp_path)(ids), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "field, value",
    [("scale_attn_by_inverse_layer_idx", True), ("reorder_and_upcast_attn", True),
     ("scale_attn_weights", False), ("add_cross_attention", True),
     ("activation_function", "silu")],
)  # fmt: skip
def test_unsupported_gpt2_variants_fail_naming_the_field(field, value):
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=V, **{field: value})
    with pytest.raises(ConfigError, match=field):
        config_from_hf_gpt2(cfg)


def test_weights_that_do_not_match_the_config_fail_clearly():
    hf = hf_gpt2()
    state = hf.state_dict()
    with pytest.raises(ConfigError, match="n_layer"):
        from_hf_gpt2(state, hf.config.to_dict() | {"n_layer": 1})  # weights of 2 layers
    with pytest.raises(ConfigError, match=r"h\.1\.attn\.c_attn\.weight.* shape"):
        bad = dict(state)
        bad["transformer.h.1.attn.c_attn.weight"] = torch.zeros(64, 64)
        from_hf_gpt2(bad, hf.config)
    with pytest.raises(ConfigError, match="state dict"):
        from_hf_gpt2(state)  # a state dict has no config
