"""The mask convention (bool, True = may attend) and mask shapes are pinned here."""

import torch

from aiayn.nn.masks import (
    causal_mask,
    combine,
    decoder_self_mask,
    lengths_mask,
    padding_mask,
    to_additive,
    to_torch_polarity,
)


def test_padding_mask_true_means_real_token():
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    mask = padding_mask(ids, pad_id=0)
    assert mask.dtype == torch.bool and mask.shape == (2, 1, 1, 4)
    assert mask[0, 0, 0].tolist() == [True, True, False, False]
    assert mask[1, 0, 0].tolist() == [True, False, False, False]


def test_lengths_mask_equals_padding_mask():
    ids = torch.tensor([[5, 6, 0, 0], [7, 8, 9, 0]])
    assert torch.equal(lengths_mask(torch.tensor([2, 3]), 4), padding_mask(ids, 0))


def test_causal_mask_square_is_lower_triangular():
    m = causal_mask(4)
    assert torch.equal(m, torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    assert m[1, 0] and m[1, 1] and not m[1, 2]  # query 1 sees keys 0, 1, not 2


def test_causal_mask_bottom_right_aligned_for_cached_decoding():
    # 2 new queries at absolute positions 3 and 4 over 5 keys (3 cached + 2 new)
    m = causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    # one new query sees every key
    assert causal_mask(1, 7).all()


def test_combine_broadcasts_and_ands():
    pad = padding_mask(torch.tensor([[4, 4, 0]]), 0)  # (1, 1, 1, 3)
    m = combine(pad, causal_mask(3), None)
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    assert combine(None, None) is None
    assert torch.equal(decoder_self_mask(torch.tensor([[4, 4, 0]]), 0), m)


def test_additive_mask_is_zero_or_minus_inf():
    bias = to_additive(torch.tensor([True, False]), torch.float16)
    assert bias.dtype == torch.float16
    assert bias[0] == 0 and bias[1] == float("-inf")  # -inf, never -1e9 (fp16 overflow)


def test_torch_polarity_is_inverted():
    m = torch.tensor([True, False])
    assert to_torch_polarity(m).tolist() == [False, True]


def test_lengths_mask_defaults_to_the_longest_length():
    ids = torch.tensor([[5, 6, 0], [7, 8, 9], [4, 0, 0]])
    mask = lengths_mask(torch.tensor([2, 3, 1]))
    assert mask.shape == (3, 1, 1, 3)  # S = max(lengths)
    assert torch.equal(mask, padding_mask(ids, 0))


def test_causal_query_never_sees_a_later_position():
    # query i sits at absolute position S - T + i; key j is visible iff j <= that position
    for T, S in [(1, 1), (3, 3), (2, 5), (4, 6)]:
        m = causal_mask(T, S)
        for i in range(T):
            assert m[i].tolist() == [j <= S - T + i for j in range(S)]


def test_masks_live_on_the_device_of_their_inputs():
    # "meta" stands in for a GPU: a mask built on the CPU would not combine with its inputs.
    meta = torch.device("meta")
    assert causal_mask(2, 3, device=meta).device == meta
    assert lengths_mask(torch.tensor([1, 2], device=meta), max_len=3).device == meta
    ids = torch.zeros(2, 3, dtype=torch.long, device=meta)
    mask = decoder_self_mask(ids, 0)
    assert mask.device == meta and mask.shape == (2, 1, 3, 3)
    bias = to_additive(torch.ones(2, 3, dtype=torch.bool, device=meta), torch.float32)
    assert bias.device == meta and bias.dtype == torch.float32
