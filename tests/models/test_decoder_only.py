"""What is the decoder-only model's own: causality, left-padded prompts, the tied output layer,
GPT-2's initialisation and size. (Invariants shared with every family: test_family.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import safe_open
from test_family import VOCAB, left_pad, lm_config
from torch.testing import assert_close

from aiayn.decode.greedy import greedy_search
from aiayn.models import DecoderOnly, load_pretrained, presets, save_pretrained

from conftest import PAD, random_ids

VARIANTS = {
    "learned (GPT-2)": {},
    "sinusoidal": {"positional": "sinusoidal"},
    "rope": {"positional": "rope"},
    "window": {"attention_window": 2},
    "math attention": {"attention_impl": "math"},
    "post-LN": {"norm_first": False},
}


def model_for(**overrides) -> DecoderOnly:
    return DecoderOnly(lm_config(**overrides)).eval()


# --- causality --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_changing_token_t_changes_no_logit_before_t(variant):
    model = model_for(**VARIANTS[variant])
    ids = random_ids(2, 9)
    base = model(ids)
    for t in (1, 4, 8):
        changed = ids.clone()
        changed[:, t] = (changed[:, t] - 3 + 1) % (VOCAB - 3) + 3  # another real token
        out = model(changed)
        assert torch.equal(out[:, :t], base[:, :t])  # bit-identical: the past never saw it
        assert not torch.allclose(out[:, t], base[:, t])  # position t itself does see it


@pytest.mark.parametrize("variant", ["learned (GPT-2)", "rope", "window"])
def test_gradient_of_a_position_reaches_no_later_input(variant):
    """d logits[t] / d embedding[j] is exactly 0 for every j > t, and not for j = t."""
    model = model_for(**VARIANTS[variant])
    seen = {}

    def keep(module, args, out):
        out.retain_grad()
        seen["x"] = out

    model.decoder.embed.register_forward_hook(keep)
    T = 8
    logits = model(random_ids(1, T))
    for t in range(T):
        seen["x"].grad = None
        logits[0, t].sum().backward(retain_graph=True)
        grad = seen["x"].grad[0]  # (T, D)
        assert torch.count_nonzero(grad[t + 1 :]) == 0, f"position {t} sees the future"
        assert grad[t].abs().sum() > 0


@torch.no_grad()
def test_attention_maps_are_causal_and_give_the_forward_logits():
    model = model_for()
    ids = random_ids(2, 6)
    logits, weights = model.attention_maps(ids)
    assert_close(logits, model(ids), atol=1e-5, rtol=1e-4)
    assert len(weights) == 2 and weights[0].shape == (2, 4, 6, 6)
    for w in weights:
        assert torch.count_nonzero(w.triu(1)) == 0
        assert_close(w.sum(-1), torch.ones(2, 4, 6))


# --- prompts of different lengths -------------------------------------------------------------


@pytest.mark.parametrize("variant", ["learned (GPT-2)", "sinusoidal", "rope", "window"])
@torch.no_grad()
def test_left_padded_batch_equals_each_prompt_alone(variant):
    """Next-token logits and greedy continuations of a batch of prompts padded on the left are
    those of each prompt alone: padding is hidden and positions start at each first token."""
    model = model_for(**VARIANTS[variant])
    prompts = [random_ids(1, n)[0] for n in (6, 1, 3, 5)]
    batch = left_pad(prompts)  # (4, 6)
    limits = torch.full((4,), 7)

    state = model.start(batch)
    batched_logits = model.step(state, batch)  # (4, V)
    batched = greedy_search(model, batch, batch, None, limits)  # (4, 7)
    for b, prompt in enumerate(prompts):
        alone_state = model.start(prompt[None])
        assert_close(
            batched_logits[b], model.step(alone_state, prompt[None])[0], atol=1e-5, rtol=1e-4
        )
        assert_close(batched_logits[b], model(prompt[None])[0, -1], atol=1e-5, rtol=1e-4)
        alone = greedy_search(model, prompt[None], prompt[None], None, limits[:1])
        assert torch.equal(batched[b], alone[0])


@torch.no_grad()
def test_pad_id_inside_the_text_is_an_ordinary_token():
    """Only the LEADING run of pad_id is padding. The same id later — in the prompt, or fed
    back after the model generated it (no rule bans it) — is attended like any token, so
    cached decoding still equals the full forward."""
    model = model_for()
    prompts = torch.tensor([[PAD, PAD, 5, PAD, 7], [4, PAD, 6, 8, 9]])  # row 0: 2 of padding
    state = model.start(prompts)
    model.step(state, prompts)
    continuation = torch.tensor([[PAD], [PAD]])  # as if both rows had generated pad_id
    cached = model.step(state, continuation)
    for b, n_pad in enumerate((2, 0)):
        text = torch.cat([prompts[b, n_pad:], continuation[b]])[None]
        assert_close(cached[b], model(text)[0, -1], atol=1e-5, rtol=1e-4)


def test_a_prompt_of_only_padding_is_refused():
    model = model_for()
    with pytest.raises(ValueError, match="at least one token"):
        model.start(torch.tensor([[PAD, PAD], [5, 6]]))


def test_learned_positions_stop_at_max_len_with_a_clear_error():
    model = model_for(max_len=8)
    with pytest.raises(ValueError, match="max_len=8"):
        model(random_ids(1, 9))


# --- the tied output layer ----------------------------------------------------------------------


def test_tied_output_layer_is_one_tensor_saved_once(tmp_path):
    model = model_for()
    assert model.generator.weight is model.decoder.embed.weight
    save_pretrained(model, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        shapes = [tuple(f.get_slice(k).get_shape()) for k in f.keys()]  # noqa: SIM118
    assert shapes.count((VOCAB, 32)) == 1  # the (V, D) matrix is stored once
    loaded = load_pretrained(tmp_path)
    assert loaded.generator.weight is loaded.decoder.embed.weight
    n_unique = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == n_unique == sum(math.prod(s) for s in shapes)


def test_untied_output_layer_is_its_own_tensor():
    model = model_for(tie_embeddings=False)
    assert model.generator.weight is not model.decoder.embed.weight
    assert model.num_parameters() == model_for().num_parameters() + VOCAB * 32


# --- GPT-2 -------------------------------------------------------------------------------------


def test_gpt2_initialisation_statistics():
    """N(0, 0.02²) for matrices and embeddings; the projections into the residual stream (W_O,
    W_2) at 0.02/√(2N); zero biases; LayerNorms at identity (GPT-2 §2.3, as HF and nanoGPT)."""
    N = 4
    model = DecoderOnly(lm_config(n_layers=N, d_model=128, n_heads=4, d_ff=512, vocab_size=500))
    residual_std = 0.02 / math.sqrt(2 * N)
    for name, p in model.named_parameters():
        if ".norm." in name or name.startswith("decoder.norm."):
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(p == expected), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            std = residual_std if name.endswith(("w_o.weight", "w_2.weight")) else 0.02
            assert p.std().item() == pytest.approx(std, rel=0.05), name
            assert abs(p.mean().item()) < 0.1 * std, name


def test_gpt2_preset_has_the_size_of_hf_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):  # sizes only: nothing allocated or initialised
        ours = DecoderOnly(presets.gpt2()).num_parameters()
        hf = sum(p.numel() for p in GPT2LMHeadModel(GPT2Config()).parameters())
    assert ours == hf == 124_439_808
