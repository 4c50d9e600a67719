"""drop_tokens: Bernoulli(p) replacement by <unk>, never of the protected ids."""

import pytest
import torch

from aiayn.data.token_dropout import drop_tokens

PAD, BOS, EOS, UNK = 0, 1, 2, 3


def test_replaces_a_fraction_p_of_ordinary_tokens_and_never_a_protected_one():
    torch.manual_seed(0)
    ids = torch.randint(4, 100, (200, 50))
    ids[:, 0], ids[:, -1], ids[::3, -10:] = BOS, EOS, PAD
    out = drop_tokens(ids, 0.2, UNK, keep=(PAD, BOS, EOS))
    changed = out != ids
    assert (out[changed] == UNK).all()
    protected = (ids == PAD) | (ids == BOS) | (ids == EOS)
    assert not changed[protected].any()
    rate = changed[~protected].float().mean().item()
    assert rate == pytest.approx(0.2, abs=0.01)  # 5σ for ~8,500 tokens
    assert (ids != UNK).all()  # the input is left as it was


def test_p_zero_is_the_identity_and_p_out_of_range_is_refused():
    ids = torch.randint(4, 100, (3, 7))
    assert drop_tokens(ids, 0.0, UNK, keep=(PAD,)) is ids
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="token dropout"):
            drop_tokens(ids, p, UNK, keep=(PAD,))
