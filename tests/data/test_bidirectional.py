"""Reversed pairs for bidirectional training: roles swap, </s> moves with the source."""

import pytest

from aiayn.data.bidirectional import reversed_pairs

EOS = 2


def test_reversed_pairs_swap_sides_and_move_the_end_of_sentence() -> None:
    pairs = [([5, 6, 7, EOS], [8, 9]), ([10, EOS], [11, 12, 13])]
    expected = [([8, 9, EOS], [5, 6, 7]), ([11, 12, 13, EOS], [10])]
    assert reversed_pairs(pairs, EOS, limit=10) == expected
    # reversing twice gives the pairs back
    assert reversed_pairs(reversed_pairs(pairs, EOS, 10), EOS, 10) == pairs


def test_reversed_pairs_leave_out_a_source_longer_than_the_limit() -> None:
    pairs = [([5, EOS], [8, 9]), ([10, EOS], [11, 12, 13])]
    assert reversed_pairs(pairs, EOS, limit=3) == [([8, 9, EOS], [5])]


def test_reversed_pairs_need_sources_that_end_with_eos() -> None:
    with pytest.raises(ValueError, match="must end with </s>"):
        reversed_pairs([([5, 6], [7])], EOS, limit=10)
