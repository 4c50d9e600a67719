"""The invariants every model kind keeps, one test body for all (as timm tests every model).

Each entry of FAMILY builds a small model and a batch for the decoding protocol
(`aiayn.decode.protocol`): `inputs` for `start` (a source, or the prompts), `first` for the
first `step` (<s>, or the prompts themselves). The tests then hold every kind to:

- cached step-by-step decoding ≡ the full uncached forward, at every step;
- beam search with K = 1 and alpha 0 ≡ greedy search;
- every parameter gets a gradient from one backward (but the key bias, which provably cannot);
- save_pretrained → load_pretrained: the same class (by `arch`) and identical outputs;
- `state.reorder(index)` ≡ starting over with the rows `index` of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from aiayn.config import DecoderOnlyConfig
from aiayn.decode.greedy import greedy_search
from aiayn.decode.search import beam_search_over
from aiayn.models import DecoderOnly, EncoderDecoder, load_pretrained, save_pretrained

from conftest import BOS, EOS, PAD, random_ids, small_config

VOCAB = 50
STEPS = 6  # decoding steps after the first


def lm_config(**overrides) -> DecoderOnlyConfig:
    """A 2-layer GPT-2-style model (pre-LN, tanh-GELU, learned positions, tied), dropout off.

    The GPT-2 switches are spelled out: `DecoderOnlyConfig.create` starts from the paper's
    `LayerConfig()`, not from the class's GPT-2 default layer.
    """
    fields = dict(
        vocab_size=VOCAB, n_layers=2, d_model=32, n_heads=4, d_ff=64, dropout=0.0, max_len=64,
        activation="gelu_tanh", norm_first=True,
    )  # fmt: skip
    fields.update(overrides)
    return DecoderOnlyConfig.create(**fields)


def left_pad(rows: list[Tensor]) -> Tensor:
    """Prompts of different lengths padded on the left. Shape: [(n_i,)] -> (B, max n_i)."""
    P = max(len(r) for r in rows)
    return torch.stack([torch.cat([torch.full((P - len(r),), PAD), r]) for r in rows])


def right_pad(rows: list[Tensor]) -> Tensor:
    S = max(len(r) for r in rows)
    return torch.stack([torch.cat([r, torch.full((S - len(r),), PAD)]) for r in rows])


@dataclass
class Case:
    model: nn.Module  # in eval mode
    inputs: Tensor  # (B, S): what `start` takes
    first: Tensor  # (B, T0): what the first `step` takes


def encoder_decoder(**overrides) -> Callable[[], Case]:
    def build() -> Case:
        model = EncoderDecoder(small_config(**overrides)).eval()
        src = right_pad([random_ids(1, n)[0] for n in (7, 3, 5)])  # sources of three lengths
        return Case(model, src, torch.full((3, 1), BOS))

    return build


def decoder_only(lengths=(5, 5, 5), **overrides) -> Callable[[], Case]:
    def build() -> Case:
        model = DecoderOnly(lm_config(**overrides)).eval()
        prompts = left_pad([random_ids(1, n)[0] for n in lengths])
        return Case(model, prompts, prompts)

    return build


#: Every model kind, small. A new family or switch that changes decoding adds a line here.
FAMILY: dict[str, Callable[[], Case]] = {
    "enc-dec post-LN sinusoidal (paper)": encoder_decoder(),
    "enc-dec pre-LN RoPE": encoder_decoder(norm_first=True, positional="rope"),
    "enc-dec learned untied": encoder_decoder(positional="learned", tie_embeddings="none"),
    "enc-dec sliding window": encoder_decoder(attention_window=2),
    "enc-dec narrow keys d_k < d_v (Table 3 B)": encoder_decoder(d_k=2),
    "enc-dec wide keys d_k > d_v, RoPE": encoder_decoder(d_k=12, positional="rope"),
    "dec-only GPT-2 learned": decoder_only(),
    "dec-only GPT-2 left-padded prompts": decoder_only(lengths=(5, 2, 4)),
    "dec-only RoPE left-padded": decoder_only(lengths=(3, 6, 1), positional="rope"),
    "dec-only sinusoidal post-LN untied": decoder_only(
        lengths=(4, 2, 4),
        positional="sinusoidal",
        norm_first=False,
        activation="relu",
        tie_embeddings=False,
        scale_embeddings=True,
    ),
    "dec-only sliding window": decoder_only(lengths=(6, 3, 6), attention_window=3),
    "dec-only math attention": decoder_only(lengths=(5, 2, 4), attention_impl="math"),
    "dec-only narrow keys, Shaw": decoder_only(lengths=(5, 2, 4), d_k=4, positional="shaw"),
}


def teacher_forced_last(model: nn.Module, inputs: Tensor, prefix: Tensor) -> Tensor:
    """The uncached reference: next-token logits after `prefix`, one row at a time (the full
    forward of a decoder-only model takes no padding, so each prompt runs unpadded).

    Shape: inputs (B, S), prefix (B, T) -> (B, V).
    """
    rows = []
    for b in range(prefix.shape[0]):
        if isinstance(model, EncoderDecoder):
            rows.append(model(inputs[b : b + 1], prefix[b : b + 1])[0, -1])
        else:
            real = prefix[b]
            n_pad = int((inputs[b] == PAD).int().cumprod(0).sum())  # the leading padding only
            rows.append(model(real[n_pad:][None])[0, -1])
    return torch.stack(rows)


@pytest.fixture(params=list(FAMILY))
def case(request) -> Case:
    return FAMILY[request.param]()


@torch.no_grad()
def test_cached_decoding_equals_full_forward_at_every_step(case):
    model, B = case.model, case.inputs.shape[0]
    state = model.start(case.inputs)
    prefix, tokens = case.first, case.first
    for _ in range(STEPS + 1):
        cached = model.step(state, tokens)  # (B, V)
        assert_close(cached, teacher_forced_last(model, case.inputs, prefix), atol=1e-5, rtol=1e-4)
        tokens = random_ids(B, 1)  # teacher forcing: any continuation will do
        prefix = torch.cat([prefix, tokens], dim=1)


def test_beam_of_one_without_length_penalty_is_greedy(case):
    B = case.inputs.shape[0]
    limits = torch.tensor([8, 3, 6])[:B]
    greedy = greedy_search(case.model, case.inputs, case.first, EOS, limits, banned=(PAD,))
    hyps = beam_search_over(
        case.model, case.inputs, case.first, EOS, limits, beam_size=1, alpha=0.0, banned=(PAD,)
    )
    for b, row in enumerate(greedy.tolist()):
        expected = [t for t in row if t != PAD]
        expected = expected[: expected.index(EOS)] if EOS in expected else expected
        assert hyps[b][0].tokens == expected
        assert hyps[b][0].finished == (EOS in row)


def _key_bias_gets_no_gradient(model: nn.Module, name: str) -> bool:
    """softmax is shift-invariant: q·(k_j + b) = q·k_j + q·b adds the same number to every key
    j's score, so the key bias b changes nothing and its gradient is exactly 0 — unless RoPE
    rotates b differently at each position (self-attention only)."""
    rope = model.config.positional == "rope" and ".self_attn." in name
    return name.endswith("w_k.bias") and not rope


def test_every_parameter_gets_a_gradient(case):
    model = case.model.train()
    if isinstance(model, EncoderDecoder):
        tgt = torch.cat([case.first, random_ids(case.first.shape[0], 4)], dim=1)
        logits = model(case.inputs, tgt)
    else:
        logits = model(case.first)
    (logits * torch.randn_like(logits)).sum().backward()
    params = dict(model.named_parameters())
    assert params, "no parameters?"
    for name, p in params.items():
        assert p.grad is not None, f"{name} got no gradient"
        if _key_bias_gets_no_gradient(model, name):
            assert p.grad.abs().max() < 1e-5, f"{name}: a key bias cannot matter, yet"
        else:
            assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_save_then_load_gives_the_same_class_and_outputs(case, tmp_path):
    model = case.model
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert torch.equal(two_steps(loaded, case), two_steps(model, case))


@torch.no_grad()
def two_steps(model: nn.Module, case: Case) -> Tensor:
    """Logits of the first two decoding steps. Shape: -> (2, B, V)."""
    state = model.start(case.inputs)
    first = model.step(state, case.first)
    return torch.stack([first, model.step(state, torch.full_like(case.first[:, :1], 7))])


@pytest.mark.parametrize("when", ["before the first step", "after the first step"])
def test_reorder_equals_running_the_reordered_batch(case, when):
    model = case.model
    index = torch.tensor([2, 0, 0, 1])  # a permutation, with a repeated row as beams have
    nxt = random_ids(3, 1)
    with torch.no_grad():
        state = model.start(case.inputs)
        if when == "before the first step":
            state.reorder(index)
            first = model.step(state, case.first[index])
        else:
            first = model.step(state, case.first)[index]
            state.reorder(index)
        second = model.step(state, nxt[index])

        ref_state = model.start(case.inputs[index])
        ref_first = model.step(ref_state, case.first[index])
        ref_second = model.step(ref_state, nxt[index])
    assert_close(first, ref_first, atol=1e-5, rtol=1e-4)
    assert_close(second, ref_second, atol=1e-5, rtol=1e-4)
