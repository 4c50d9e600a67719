"""The invariants of the encoder-decoder: padding, batching, causality, cached decoding."""

import pytest
import torch
from torch.testing import assert_close

from aiayn.models import EncoderDecoder, presets
from aiayn.nn.masks import combine, padding_mask
from aiayn.nn.sliding_window import band_mask

from conftest import PAD, random_ids, small_config

VARIANTS = {
    "paper": {},
    "pre-LN": {"norm_first": True},
    "learned": {"positional": "learned"},
    "rope": {"positional": "rope"},
    "math-attention": {"attention_impl": "math"},
    "gelu-untied": {"activation": "gelu", "tie_embeddings": "none"},
}


def model_for(**overrides) -> EncoderDecoder:
    return EncoderDecoder(small_config(**overrides)).eval()


def pad_right(ids: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([ids, torch.full((ids.shape[0], extra), PAD)], dim=1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoder_padding_does_not_change_real_positions(variant):
    model = model_for(**VARIANTS[variant])
    src = random_ids(2, 6)
    memory, _ = model.encode(src)
    padded_memory, mask = model.encode(pad_right(src, 4))
    assert mask.shape == (2, 1, 1, 10)
    assert_close(padded_memory[:, :6], memory, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoder_padding_does_not_change_real_positions(variant):
    model = model_for(**VARIANTS[variant])
    src, tgt = random_ids(2, 6), random_ids(2, 5)
    logits = model(src, tgt)
    padded = model(pad_right(src, 3), pad_right(tgt, 4))
    assert padded.shape == (2, 9, 50)
    assert_close(padded[:, :5], logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "pre-LN", "rope"])
def test_batched_equals_one_by_one(variant):
    model = model_for(**VARIANTS[variant])
    src_lens, tgt_lens = [7, 3, 5], [4, 6, 2]
    srcs = [random_ids(1, n) for n in src_lens]
    tgts = [random_ids(1, n) for n in tgt_lens]
    src = torch.cat([pad_right(s, 7 - s.shape[1]) for s in srcs])  # (3, 7)
    tgt = torch.cat([pad_right(t, 6 - t.shape[1]) for t in tgts])  # (3, 6)
    batched = model(src, tgt)
    for i, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        alone = model(s, t)  # (1, T_i, V)
        assert_close(batched[i : i + 1, : t.shape[1]], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoder_is_causal(variant):
    """Changing target token j never changes the outputs at positions < j."""
    model = model_for(**VARIANTS[variant])
    src, tgt = random_ids(2, 6), random_ids(2, 8)
    base = model(src, tgt)
    for j in (1, 4, 7):
        changed = tgt.clone()
        changed[:, j] = (changed[:, j] + 1 - 3) % 47 + 3  # another real token
        out = model(src, changed)
        assert_close(out[:, :j], base[:, :j], atol=1e-6, rtol=1e-6)
        assert not torch.allclose(out[:, j:], base[:, j:])  # and the future does change


def test_source_is_seen_by_every_target_position():
    model = model_for()
    src, tgt = random_ids(1, 6), random_ids(1, 5)
    changed = src.clone()
    changed[0, 5] = 3 if src[0, 5] != 3 else 4
    delta = (model(src, tgt) - model(changed, tgt)).abs().amax(-1)  # (1, T)
    assert (delta > 0).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_incremental_decoding_equals_full_forward(variant):
    model = model_for(**VARIANTS[variant])
    src = pad_right(random_ids(3, 6), 2)
    src[1, 4:] = PAD  # different source lengths in the batch
    tgt = random_ids(3, 9)
    full = model(src, tgt)  # (B, T, V)

    memory, memory_mask = model.encode(src)
    cache = model.new_cache(capacity=4)  # small: forces the buffer to grow mid-sentence
    for t in range(tgt.shape[1]):
        step = model.decode(tgt[:, t : t + 1], memory if t == 0 else None, memory_mask, cache)
        assert step.shape == (3, 1, 50)
        assert_close(step[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
    assert cache.length == tgt.shape[1]


def test_incremental_decoding_in_chunks_uses_bottom_right_causal_mask():
    model = model_for()
    src, tgt = random_ids(2, 5), random_ids(2, 8)
    full = model(src, tgt)
    memory, memory_mask = model.encode(src)
    cache = model.new_cache()
    first = model.decode(tgt[:, :3], memory, memory_mask, cache)  # 3 steps at once
    rest = model.decode(tgt[:, 3:], None, memory_mask, cache)  # 5 more over 8 keys
    assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_reorder_follows_beams():
    model = model_for()
    src, tgt = random_ids(2, 5), random_ids(2, 6)
    memory, memory_mask = model.encode(src)
    cache = model.new_cache()
    model.decode(tgt[:, :3], memory, memory_mask, cache)
    index = torch.tensor([1, 0])
    cache.reorder(index)
    step = model.decode(tgt[index, 3:4], None, memory_mask[index], cache)
    full = model(src[index], tgt[index])
    assert_close(step[:, 0], full[:, 3], atol=1e-5, rtol=1e-5)


def test_last_only_returns_the_last_position():
    model = model_for()
    src, tgt = random_ids(2, 5), random_ids(2, 4)
    memory, mask = model.encode(src)
    assert_close(model.decode(tgt, memory, mask, last_only=True)[:, 0], model(src, tgt)[:, -1])


def test_three_way_tying_shares_one_tensor():
    model = EncoderDecoder(small_config(tie_embeddings="all"))
    emb = model.encoder.embed.weight
    assert model.decoder.embed.weight is emb and model.generator.weight is emb
    untied = EncoderDecoder(small_config(tie_embeddings="none"))
    assert model.num_parameters() == untied.num_parameters() - 2 * 50 * 32
    # a gradient through the output projection reaches the (shared) source embedding
    model.train()
    model(random_ids(2, 4), random_ids(2, 3)).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_decoder_tying_keeps_separate_vocabularies():
    model = EncoderDecoder(small_config(src_vocab_size=40, tie_embeddings="decoder"))
    assert model.generator.weight is model.decoder.embed.weight
    assert model.encoder.embed.weight is not model.decoder.embed.weight
    assert model(random_ids(1, 3, vocab=40), random_ids(1, 2)).shape == (1, 2, 50)


@pytest.mark.parametrize(
    "name, paper_millions", [("base", 65), ("big", 213)], ids=["base-65M", "big-213M"]
)
def test_paper_parameter_counts_within_5_percent(name, paper_millions):
    with torch.device("meta"):
        model = EncoderDecoder(presets.get(name, vocab_size=37000))
    n = model.num_parameters() / 1e6
    assert abs(n - paper_millions) / paper_millions < 0.05, n


def test_every_parameter_receives_a_gradient():
    for overrides in ({}, {"norm_first": True, "tie_embeddings": "none", "positional": "learned"}):
        model = EncoderDecoder(small_config(**overrides)).train()
        model(random_ids(2, 5), random_ids(2, 4)).logsumexp(-1).sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
        assert not missing, missing


def test_pre_ln_adds_final_norms_post_ln_does_not():
    assert model_for().encoder.norm is None and model_for().decoder.norm is None
    pre = model_for(norm_first=True)
    assert pre.encoder.norm is not None and pre.decoder.norm is not None


def test_initialisation_is_xavier_uniform_with_zero_bias():
    model = EncoderDecoder(small_config(d_model=64, d_ff=256))
    w = model.encoder.layers[0].ffn.w_1.weight  # (256, 64)
    bound = (6 / (64 + 256)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert not model.encoder.layers[0].ffn.w_1.bias.any()
    # embeddings × √d_model have unit variance
    emb = model.encoder.embed(torch.arange(50)[None])
    assert 0.7 < emb.std().item() < 1.3


def test_bf16_autocast_forward_and_backward_on_cpu():
    model = EncoderDecoder(small_config()).train()
    src, tgt = random_ids(2, 6), random_ids(2, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, tgt)
        assert logits.dtype == torch.bfloat16
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten())
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_dropout_is_active_in_train_mode_only():
    model = EncoderDecoder(small_config(dropout=0.3, attention_dropout=0.1))
    src, tgt = random_ids(2, 6), random_ids(2, 5)
    model.train()
    assert not torch.allclose(model(src, tgt), model(src, tgt))
    model.eval()
    assert torch.equal(model(src, tgt), model(src, tgt))


def test_attention_maps_are_distributions_that_ignore_padding():
    model = model_for()
    src = pad_right(random_ids(2, 4), 2)
    tgt = random_ids(2, 3)
    maps = model.attention_maps(src, tgt)
    assert len(maps.encoder_self) == 2 and maps.encoder_self[0].shape == (2, 4, 6, 6)
    assert maps.decoder_cross[1].shape == (2, 4, 3, 6)
    assert_close(maps.logits, model(src, tgt), atol=1e-5, rtol=1e-5)
    pad = ~padding_mask(src, PAD)[:, :, 0]  # (B, 1, S): True at padding
    for w in maps.decoder_cross:
        assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
        assert (w.masked_select(pad[:, :, None].expand_as(w)) == 0).all()
    for w in maps.decoder_self:  # strictly upper triangle (the future) is exactly zero
        assert (w.triu(1) == 0).all()


# --- sliding-window (local) self-attention: ModelConfig.attention_window ---------------------

WINDOWED = {"paper": {}, "pre-LN": {"norm_first": True}, "rope": {"positional": "rope"}}


def windowed_pair(window: int, **overrides) -> tuple[EncoderDecoder, EncoderDecoder]:
    """A model with `attention_window=window` and the full-attention model of the same weights."""
    local = model_for(attention_window=window, **overrides)
    full = model_for(**overrides)
    full.load_state_dict(local.state_dict())
    return local, full


@pytest.mark.parametrize("variant", WINDOWED)
def test_window_covering_the_sequences_equals_full_attention(variant):
    local, full = windowed_pair(9, **WINDOWED[variant])
    src = pad_right(random_ids(2, 8), 2)  # S = 10: window 9 reaches every key
    src[1, 5:] = PAD
    tgt = pad_right(random_ids(2, 7), 1)
    assert_close(local(src, tgt), full(src, tgt), atol=1e-5, rtol=1e-5)
    # and a window that does not cover them changes the result
    small, _ = windowed_pair(2, **WINDOWED[variant])
    small.load_state_dict(local.state_dict())
    assert not torch.allclose(small(src, tgt), full(src, tgt), atol=1e-3)


@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("variant", WINDOWED)
def test_small_window_equals_dense_band_masks(variant, pad):
    """Window 2 == the full-attention layers run with band_mask ∧ padding as dense masks.
    (Padding of at most `window` keeps a real key in every band: no empty row in the reference.)"""
    window = 2
    local, full = windowed_pair(window, **WINDOWED[variant])
    src, tgt = pad_right(random_ids(2, 8), pad), pad_right(random_ids(2, 7), pad)
    S, T = src.shape[1], tgt.shape[1]
    src_pad, tgt_pad = padding_mask(src, PAD), padding_mask(tgt, PAD)
    memory, _, _ = full.encoder(src, combine(src_pad, band_mask(S, window)))
    hidden, _, _ = full.decoder(
        tgt, combine(tgt_pad, band_mask(T, window, causal=True)), memory, src_pad
    )
    assert_close(local(src, tgt), full.generator(hidden), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", WINDOWED)
def test_window_padding_does_not_change_real_positions(variant):
    model = model_for(attention_window=2, **WINDOWED[variant])
    src, tgt = random_ids(2, 6), random_ids(2, 5)
    memory, _ = model.encode(src)
    padded_memory, _ = model.encode(pad_right(src, 6))  # padded queries with empty bands
    assert_close(padded_memory[:, :6], memory, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(padded_memory).all()
    logits = model(src, tgt)
    padded = model(pad_right(src, 6), pad_right(tgt, 6))
    assert torch.isfinite(padded).all()
    assert_close(padded[:, :5], logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", WINDOWED)
def test_window_incremental_decoding_equals_full_forward(variant):
    model = model_for(attention_window=2, **WINDOWED[variant])
    src = pad_right(random_ids(3, 6), 2)
    src[1, 4:] = PAD
    tgt = random_ids(3, 9)
    full = model(src, tgt)
    memory, memory_mask = model.encode(src)
    cache = model.new_cache(capacity=4)  # small: forces the buffer to grow mid-sentence
    for t in range(tgt.shape[1]):
        step = model.decode(tgt[:, t : t + 1], memory if t == 0 else None, memory_mask, cache)
        assert_close(step[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
    cache = model.new_cache()  # chunks: T > 1 new queries over the cache
    first = model.decode(tgt[:, :4], memory, memory_mask, cache)
    rest = model.decode(tgt[:, 4:], None, memory_mask, cache)
    assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_window_bounds_what_each_position_sees():
    """With 2 layers of window 1, target position i depends on target tokens i-2 … i only,
    and memory position i on source tokens i-2 … i+2 only."""
    model = model_for(attention_window=1)
    src, tgt = random_ids(1, 9), random_ids(1, 9)
    base_logits = model(src, tgt)
    base_memory, _ = model.encode(src)
    for j in (0, 4, 8):
        changed = tgt.clone()
        changed[0, j] = 3 if tgt[0, j] != 3 else 4
        delta = (model(src, changed) - base_logits).abs().amax(-1)[0]  # (T,)
        affected = [i for i in range(9) if delta[i] > 1e-6]
        assert affected == [i for i in range(9) if 0 <= i - j <= 2], (j, affected)
        changed = src.clone()
        changed[0, j] = 3 if src[0, j] != 3 else 4
        delta = (model.encode(changed)[0] - base_memory).abs().amax(-1)[0]  # (S,)
        affected = [i for i in range(9) if delta[i] > 1e-6]
        assert affected == [i for i in range(9) if abs(i - j) <= 2], (j, affected)


def test_window_attention_maps_are_band_limited():
    model = model_for(attention_window=2)
    src, tgt = pad_right(random_ids(2, 6), 2), random_ids(2, 7)
    maps = model.attention_maps(src, tgt)
    assert_close(maps.logits, model(src, tgt), atol=1e-5, rtol=1e-5)
    outside_dec = ~band_mask(7, 2, causal=True)
    outside_enc = ~band_mask(8, 2)
    for w in maps.decoder_self:
        assert w.shape == (2, 4, 7, 7) and (w[..., outside_dec] == 0).all()
    for w in maps.encoder_self:
        assert w.shape == (2, 4, 8, 8) and (w[..., outside_enc] == 0).all()
    assert maps.decoder_cross[0].shape == (2, 4, 7, 8)  # cross-attention is never windowed
    assert (maps.decoder_cross[0][..., :6] > 0).all()  # every real source token, all queries
