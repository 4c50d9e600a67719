"""BERT's masking: 15% of predictable positions, 80/10/10, never specials or padding, whole
words together, reproducible from the generator."""

import math

import pytest
import torch

from aiayn.data.masking import IGNORE, Masking

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SPECIALS = frozenset({PAD, 1, CLS, SEP, MASK})
V = 1000


def batch(rows: int = 400, width: int = 120) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (rows, width), generator=gen)
    ids[:, 0], ids[:, width // 2], ids[:, -1] = CLS, SEP, SEP
    ids[::3, 3 * width // 4 :] = PAD  # a third of the rows padded
    return ids  # (rows, width)


def masking(**overrides) -> Masking:
    return Masking(mask_id=MASK, vocab_size=V, special_ids=SPECIALS, **overrides)


def test_rates_over_many_tokens():
    ids = batch()
    inputs, targets = masking().apply(ids, generator=torch.Generator().manual_seed(0))
    predictable = ~torch.isin(ids, torch.tensor(sorted(SPECIALS)))
    selected = targets != IGNORE
    n = int(selected.sum())
    assert abs(n / int(predictable.sum()) - 0.15) < 0.005  # ~40k positions: σ ≈ 0.0018
    assert torch.equal(targets[selected], ids[selected])  # targets are the original tokens
    masked = (inputs == MASK) & selected
    kept = (inputs == ids) & selected
    replaced = selected & ~masked & ~kept
    assert abs(int(masked.sum()) / n - 0.8) < 0.015
    assert abs(int(kept.sum()) / n - 0.1) < 0.01  # (random draws equal to the token: ~0.1%)
    assert abs(int(replaced.sum()) / n - 0.1) < 0.01
    # random replacements are ordinary tokens, spread over the vocabulary
    drawn = inputs[replaced]
    assert not torch.isin(drawn, torch.tensor(sorted(SPECIALS))).any()
    ordinary = V - len(SPECIALS)  # n uniform draws hit ~ordinary·(1 - e^(-n/ordinary)) ids
    expected = ordinary * (1 - math.exp(-drawn.numel() / ordinary))
    assert abs(drawn.unique().numel() / expected - 1) < 0.1
    # nothing else changes
    assert torch.equal(inputs[~selected], ids[~selected])


def test_specials_and_padding_are_never_selected():
    ids = batch()
    _, targets = masking(rate=0.9).apply(ids, generator=torch.Generator().manual_seed(0))
    special = torch.isin(ids, torch.tensor(sorted(SPECIALS)))
    assert (targets[special] == IGNORE).all()
    assert (targets[~special] != IGNORE).float().mean() > 0.85  # while most others are


def test_whole_words_are_selected_together():
    ids = torch.randint(5, V, (200, 40), generator=torch.Generator().manual_seed(2))
    words = torch.arange(40).div(3, rounding_mode="floor").expand(200, 40).clone()  # 3 pieces
    words[:, 0] = words[:, -1] = -1  # [CLS], [SEP]
    ids[:, 0], ids[:, -1] = CLS, SEP
    _, targets = masking().apply(ids, words, generator=torch.Generator().manual_seed(0))
    selected = targets != IGNORE
    assert not selected[:, 0].any() and not selected[:, -1].any()
    for w in range(1, 13):  # words fully inside positions 1..38
        pieces = selected[:, words[0] == w]  # (200, 3)
        assert (pieces.all(dim=1) | ~pieces.any(dim=1)).all()  # all of a word or none
    rate = selected[:, 3:36].float().mean().item()
    assert abs(rate - 0.15) < 0.03


def test_the_same_generator_state_gives_the_same_masks():
    ids = batch(rows=20, width=30)
    a = masking().apply(ids, generator=torch.Generator().manual_seed(5))
    b = masking().apply(ids, generator=torch.Generator().manual_seed(5))
    c = masking().apply(ids, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("bad", [dict(rate=0.0), dict(rate=1.0), dict(mask_fraction=0.95)])
def test_bad_settings(bad):
    with pytest.raises(ValueError):
        masking(**bad)
