"""LM windows: targets shifted by one, exact resume, disjoint ranks, validation of every id."""

import itertools

import numpy as np
import pytest
import torch

from aiayn.data.lm_blocks import (
    SequentialWindows,
    WindowSampler,
    check_enough_tokens,
    collate_windows,
    split_tokens,
)
from aiayn.errors import ConfigError, DataError

N, CONTEXT, BATCH = 5_000, 16, 8


@pytest.fixture
def tokens(tmp_path):
    """A read-only memmap of N distinct-enough ids, as a token file gives."""
    path = tmp_path / "t.bin"
    np.arange(N, dtype=np.uint16).tofile(path)
    return np.memmap(path, dtype=np.uint16, mode="r", shape=(N,))


def _epochs(sampler, n_epochs):
    """Batches of `n_epochs` epochs, each from a fresh iter() as the Trainer does."""
    return [batch for _ in range(n_epochs) for batch in sampler]


def test_collate_gives_inputs_and_targets_shifted_by_one(tokens):
    x, y = collate_windows(tokens, [0, 100, N - CONTEXT - 1], CONTEXT)
    assert x.shape == y.shape == (3, CONTEXT)
    assert x.dtype == y.dtype == torch.int64 and x.is_contiguous() and y.is_contiguous()
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert x[1].tolist() == list(range(100, 100 + CONTEXT))
    assert y[2, -1].item() == N - 1  # the last window ends at the last token
    x_dev, _ = collate_windows(tokens, [0], CONTEXT, device="cpu")
    assert x_dev.device.type == "cpu"


def test_collate_refuses_a_window_that_does_not_fit(tokens):
    with pytest.raises(ValueError, match="window offsets must be in"):
        collate_windows(tokens, [N - CONTEXT], CONTEXT)
    with pytest.raises(ValueError, match="window offsets must be in"):
        collate_windows(tokens, [-1], CONTEXT)


def test_an_epoch_is_a_shuffled_grid_of_distinct_windows_that_fit():
    sampler = WindowSampler(N, CONTEXT, BATCH, seed=3)
    assert sampler.n_windows == (N - 1) // CONTEXT - 1
    assert len(sampler) == sampler.n_windows // BATCH  # about N / (BATCH · CONTEXT)
    phases = set()
    for epoch in range(6):
        batches = list(sampler)
        assert len(batches) == len(sampler) and all(len(b) == BATCH for b in batches)
        starts = [o for b in batches for o in b]
        assert len(set(starts)) == len(starts)  # no window twice in an epoch
        assert all(o >= 0 and o + CONTEXT + 1 <= N for o in starts)
        phase = {o % CONTEXT for o in starts}
        assert len(phase) == 1  # one grid per epoch ...
        phases |= phase
        assert sampler.epoch == epoch + 1
    assert len(phases) > 1  # ... at a phase that moves from epoch to epoch
    assert starts != sorted(starts)  # shuffled


def test_windows_follow_from_seed_and_epoch_alone():
    two_epochs = _epochs(WindowSampler(N, CONTEXT, BATCH, seed=1), 2)
    assert _epochs(WindowSampler(N, CONTEXT, BATCH, seed=1), 2) == two_epochs
    assert _epochs(WindowSampler(N, CONTEXT, BATCH, seed=2), 2) != two_epochs
    fresh = WindowSampler(N, CONTEXT, BATCH, seed=1)  # epoch 1 without walking epoch 0
    assert fresh.epoch_offsets(1).tolist() == two_epochs[len(fresh) :]


@pytest.mark.parametrize("stop_after", [0, 1, 7, 30, 31, 45])
def test_resume_mid_epoch_continues_with_exactly_the_same_windows(stop_after):
    reference = _epochs(WindowSampler(N, CONTEXT, BATCH, seed=5), 3)
    first = WindowSampler(N, CONTEXT, BATCH, seed=5)
    assert len(first) == 38
    taken = []
    for batch in itertools.islice(itertools.chain(first, first, first), stop_after):
        taken.append(batch)  # the run stops here; its checkpoint holds state_dict()
    state = first.state_dict()

    resumed = WindowSampler(N, CONTEXT, BATCH, seed=5)
    resumed.load_state_dict(state)
    assert resumed.epoch == state["epoch"]
    rest = []
    while len(taken) + len(rest) < len(reference):
        rest.extend(resumed)
    assert taken + rest[: len(reference) - len(taken)] == reference


def test_a_state_saved_at_the_end_of_an_epoch_resumes_at_the_next(tokens):
    sampler = WindowSampler(N, CONTEXT, BATCH)
    batches = iter(sampler)
    epoch0 = [next(batches) for _ in range(len(sampler))]  # all of epoch 0, generator not done
    state = sampler.state_dict()
    assert (state["epoch"], state["index"]) == (0, len(sampler))
    resumed = WindowSampler(N, CONTEXT, BATCH)
    resumed.load_state_dict(state)
    assert list(resumed) == sampler.epoch_offsets(1).tolist()
    assert epoch0 == sampler.epoch_offsets(0).tolist()


def test_resume_refuses_other_settings():
    state = WindowSampler(N, CONTEXT, BATCH, seed=1).state_dict()
    with pytest.raises(ConfigError, match=r"batch_size 8 -> 4.*context 16 -> 32"):
        WindowSampler(N, 32, 4, seed=1).load_state_dict(state)


def test_two_ranks_get_disjoint_windows_and_the_same_number_of_batches():
    ranks = [WindowSampler(N, CONTEXT, BATCH, seed=7, rank=r, world_size=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == WindowSampler(N, CONTEXT, BATCH).n_windows // 16
    for _ in range(3):  # epochs
        mine, theirs = ([o for b in s for o in b] for s in ranks)
        assert mine and not set(mine) & set(theirs)
        assert {o % CONTEXT for o in mine} == {o % CONTEXT for o in theirs}  # one shared grid
    with pytest.raises(ConfigError, match="rank"):
        WindowSampler(N, CONTEXT, BATCH, rank=2, world_size=2)


def test_a_tiny_corpus_repeats_windows_rather_than_yielding_nothing(caplog):
    sampler = WindowSampler(CONTEXT * 3, CONTEXT, BATCH)
    assert sampler.n_windows == 1 and len(sampler) == 1
    (batch,) = list(sampler)
    assert len(batch) == BATCH and all(o + CONTEXT + 1 <= CONTEXT * 3 for o in batch)
    assert "windows repeat" in caplog.text
    exact = WindowSampler(CONTEXT + 1, CONTEXT, 2)  # exactly one window, phase 0
    assert list(exact) == [[0, 0]]


def test_a_corpus_shorter_than_one_window_is_a_data_error(tokens):
    with pytest.raises(DataError, match=r"has 16 tokens, but a context of 16 needs at least 17"):
        WindowSampler(16, 16, BATCH)
    with pytest.raises(DataError, match=r"validation data has 100 tokens.*at least 129"):
        SequentialWindows(tokens[:100], 128, BATCH)
    with pytest.raises(ConfigError, match="context must be >= 1"):
        check_enough_tokens(10, 0)


@pytest.mark.parametrize("n", [CONTEXT + 1, 5 * CONTEXT + 1, 5 * CONTEXT + 7, N])
def test_validation_windows_cover_every_target_once_in_order(tokens, n):
    valid = SequentialWindows(tokens[:n], CONTEXT, 3)
    batches = list(valid)
    assert len(batches) == len(valid)
    xs = torch.cat([x.flatten() for x, _ in batches])
    ys = torch.cat([y.flatten() for _, y in batches])
    assert ys.tolist() == list(range(1, n))  # every id but the first, once, in order
    assert xs.tolist() == list(range(n - 1))
    assert valid.n_targets == n - 1
    full = [x for x, _ in batches if x.shape[1] == CONTEXT]
    assert all(x.shape[0] <= 3 for x in full)
    assert next(iter(valid))[0].tolist() == batches[0][0].tolist()  # iterable again, the same


def test_validation_without_the_tail_scores_only_full_windows(tokens):
    valid = SequentialWindows(tokens[: 5 * CONTEXT + 7], CONTEXT, 2, include_tail=False)
    ys = torch.cat([y.flatten() for _, y in valid])
    assert ys.tolist() == list(range(1, 5 * CONTEXT + 1)) and valid.n_targets == 5 * CONTEXT
    assert len(valid) == 3 and all(x.shape[1] == CONTEXT for x, _ in valid)


def test_split_keeps_the_last_fraction_for_validation_without_copying(tokens):
    train, valid = split_tokens(tokens, 0.1)
    assert len(train) == int(N * 0.9) and len(train) + len(valid) == N
    assert valid[0] == train[-1] + 1
    assert np.shares_memory(train, tokens) and np.shares_memory(valid, tokens)
    assert len(split_tokens(np.arange(1_115_394), 0.1)[0]) == 1_003_854  # nanoGPT's split
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError, match="valid_fraction"):
            split_tokens(tokens, bad)
