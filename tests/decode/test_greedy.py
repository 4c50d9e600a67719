"""Greedy decoding with the cache equals argmax over full teacher-forced passes."""

import pytest
import torch

from aiayn.decode import greedy_decode
from aiayn.models import EncoderDecoder

from conftest import BOS, EOS, PAD, random_ids, small_config


def reference_greedy(model, src, steps):
    """No cache: re-run the whole prefix every step (quadratic, obviously right)."""
    prefix = torch.full((src.shape[0], 1), BOS)
    for _ in range(steps):
        logits = model(src, prefix)[:, -1]  # (B, V)
        logits[:, [PAD, BOS]] = float("-inf")  # never generated
        next_token = logits.argmax(-1, keepdim=True)
        prefix = torch.cat([prefix, next_token], dim=1)
    return prefix[:, 1:]


@pytest.mark.parametrize("window", [None, 2], ids=["full", "window-2"])
def test_cached_greedy_equals_uncached_reference(window):
    model = EncoderDecoder(small_config(attention_window=window)).eval()
    src = random_ids(4, 6)
    out = greedy_decode(model, src, BOS, EOS, max_len=10)
    ref = reference_greedy(model, src, out.shape[1])
    for row, ref_row in zip(out, ref, strict=True):
        ended = (row == EOS).nonzero()
        n = int(ended[0]) + 1 if len(ended) else len(row)
        assert torch.equal(row[:n], ref_row[:n])
        assert (row[n:] == PAD).all()  # after </s>, only padding


def test_stops_at_eos_and_respects_length_limits():
    model = EncoderDecoder(small_config()).eval()
    handle = model.generator.register_forward_hook(
        lambda m, i, out: out + torch.nn.functional.one_hot(torch.tensor(EOS), 50) * 1e4
    )
    out = greedy_decode(model, random_ids(3, 5), BOS, EOS)
    assert out.shape == (3, 1) and (out == EOS).all()
    handle.remove()
    out = greedy_decode(model, random_ids(2, 5), BOS, EOS, max_len=4)
    assert out.shape[1] <= 4
    assert not ((out == BOS).any() or (out[:, 0] == PAD).any())  # never <s>, never pad first
    out = greedy_decode(model, random_ids(2, 3), BOS, EOS, extra_len=2)
    assert out.shape[1] <= 5  # source length + extra_len
