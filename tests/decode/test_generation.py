"""The language-model generation loop: cached = full forward, batched = alone, seeded sampling
reproducible, temperature 0 = top-k 1 = greedy search, eos ends a row, and the sliding window
past the context."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from aiayn.config import DecoderOnlyConfig
from aiayn.decode.generation import generate_tokens
from aiayn.decode.greedy import greedy_search
from aiayn.decode.sampling import SamplingConfig
from aiayn.models.decoder_only import DecoderOnly

V = 24
PAD = 0
GREEDY = SamplingConfig(temperature=0)
HOT = SamplingConfig(temperature=1.5)  # flat: samples differ from greedy


def lm(max_len: int = 64, sharp: bool = True, **overrides) -> DecoderOnly:
    fields = dict(vocab_size=V, n_layers=2, d_model=32, n_heads=4, d_ff=64, dropout=0.0,
                  max_len=max_len, activation="gelu_tanh", norm_first=True)  # fmt: skip
    model = DecoderOnly(DecoderOnlyConfig.create(**{**fields, **overrides})).eval()
    # Sharp: with GPT-2's small initialisation a random model repeats one token whatever its
    # context, so a wrong window or a leaked pad would go unnoticed.
    for p in model.parameters():
        if sharp and p.dim() >= 2:
            nn.init.normal_(p, std=1.0)
    return model


def prompts(*lengths: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(sum(lengths))
    return [torch.randint(3, V, (n,), generator=g).tolist() for n in lengths]


class StepRecorder(nn.Module):
    """The model, with each `step`'s logits kept (one (B, V) tensor per call)."""

    def __init__(self, model: DecoderOnly) -> None:
        super().__init__()
        self.model, self.config, self.logits = model, model.config, []

    def start(self, inputs, capacity=64):
        return self.model.start(inputs, capacity)

    def step(self, state, tokens):
        out = self.model.step(state, tokens)
        self.logits.append(out.clone())
        return out


def test_cached_step_logits_equal_a_full_forward_at_every_step():
    model = lm(sharp=False)  # GPT-2's initialisation: logits of the usual size
    spy = StepRecorder(model)
    ps = prompts(1, 4, 9)
    out = generate_tokens(spy, ps, 12, HOT, seed=3)
    assert len(spy.logits) == 12  # one prompt pass, then one step per new token but the last
    for b, (p, gen) in enumerate(zip(ps, out, strict=True)):
        full = model(torch.tensor([p + gen]))[0]  # (T, V): teacher-forced, no cache
        for k, step_logits in enumerate(spy.logits):
            assert_close(step_logits[b], full[len(p) - 1 + k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("sampling", [GREEDY, HOT, SamplingConfig(0.9, 5, 0.9, 1.3)],
                         ids=["greedy", "sampled", "top-k-p-penalty"])  # fmt: skip
@pytest.mark.parametrize("max_len", [64, 10], ids=["within-context", "past-context"])
def test_batched_prompts_of_different_lengths_equal_one_at_a_time(sampling, max_len):
    model = lm(max_len=max_len)
    ps = prompts(1, 3, 7, 12)
    eos = 5  # rows end at different steps and leave the batch
    batched = generate_tokens(model, ps, 30, sampling, eos_id=eos, seed=11)
    for i, p in enumerate(ps):
        alone = generate_tokens(model, [p], 30, sampling, eos_id=eos, seed=11 + i)
        assert batched[i] == alone[0]
    if sampling is not GREEDY:
        assert len({len(o) for o in batched}) > 1, "no row ended early: eos not exercised"


def test_seeded_sampling_is_reproducible_and_depends_on_the_seed():
    model = lm()
    ps = prompts(2, 5)
    a = generate_tokens(model, ps, 20, HOT, seed=7)
    assert a == generate_tokens(model, ps, 20, HOT, seed=7)
    assert a != generate_tokens(model, ps, 20, HOT, seed=8)
    assert generate_tokens(model, ps, 20, HOT, seed=[7, 8]) == a  # a list gives each row's seed
    torch.manual_seed(5)
    b = generate_tokens(model, ps, 20, HOT)  # no seed: torch's global RNG picks one
    torch.manual_seed(5)
    assert generate_tokens(model, ps, 20, HOT) == b


def test_temperature_0_and_top_k_1_are_greedy_search():
    model = lm()
    ps = prompts(2, 6, 3)
    width = max(map(len, ps))
    padded = torch.tensor([[PAD] * (width - len(p)) + p for p in ps])  # (B, P)
    ref = greedy_search(model, padded, padded, None, torch.full((3,), 15), banned=(PAD,))
    ref = ref.tolist()
    assert generate_tokens(model, ps, 15, GREEDY) == ref
    assert generate_tokens(model, ps, 15, SamplingConfig(temperature=0.7, top_k=1), seed=1) == ref


def test_eos_ends_its_row_only():
    model = lm()
    ps = prompts(3, 5)
    free = generate_tokens(model, ps, 10, GREEDY)
    # the last token that row 0 generates first at step k and row 1 never
    k = [k for k, t in enumerate(free[0]) if t not in free[1] and t not in free[0][:k]][-1]
    assert k < 9
    out = generate_tokens(model, ps, 10, GREEDY, eos_id=free[0][k])
    assert out[0] == free[0][: k + 1]  # ends with the eos, nothing after
    assert out[1] == free[1]  # the other row goes on to the limit


def test_on_token_streams_every_token_in_order():
    model = lm()
    ps = prompts(2, 4)
    seen: dict[int, list[int]] = {0: [], 1: []}
    out = generate_tokens(model, ps, 9, HOT, eos_id=5, seed=2,
                          on_token=lambda row, tok: seen[row].append(tok))  # fmt: skip
    assert seen == {0: out[0], 1: out[1]}


def sliding_reference(model: DecoderOnly, prompt: list[int], steps: int) -> list[int]:
    """Greedy with no cache: the documented window, recomputed from scratch every step."""
    max_len = model.config.max_len
    seq, first = list(prompt), max(0, len(prompt) - max_len)
    for _ in range(steps):
        logits = model(torch.tensor([seq[first:]]))[0, -1]  # (V,)
        logits[PAD] = float("-inf")
        seq.append(int(logits.argmax()))
        if len(seq) - first > max_len:
            first = len(seq) - max_len // 2  # the documented window: half the context
    return seq[len(prompt) :]


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_generation_past_the_context_slides_a_window(positional):
    model = lm(max_len=8, positional=positional)
    ps = prompts(3, 11)  # the second prompt alone is longer than the context
    out = generate_tokens(model, ps, 30, GREEDY)
    assert [len(o) for o in out] == [30, 30]
    for p, o in zip(ps, out, strict=True):
        assert o == sliding_reference(model, p, 30)


def test_up_to_the_context_equals_the_full_sequence_without_a_window():
    # 5 + 11 = 16 = max_len: every step sees the whole sequence, as the reference does.
    model = lm(max_len=16)
    (p,) = prompts(5)
    out = generate_tokens(model, [p], 11, GREEDY)[0]
    seq = list(p)
    for _ in range(11):
        logits = model(torch.tensor([seq]))[0, -1]
        logits[PAD] = float("-inf")
        seq.append(int(logits.argmax()))
    assert out == seq[5:]


def test_bad_prompts_are_refused():
    model = lm()
    with pytest.raises(ValueError, match="at least one token"):
        generate_tokens(model, [[]], 3, GREEDY)
    with pytest.raises(ValueError, match="padding"):
        generate_tokens(model, [[4, PAD, 5]], 3, GREEDY)
    assert generate_tokens(model, [[4]], 0, GREEDY) == [[]]
