"""Token-based batching invariants, resumption, ranks, and collation."""

import itertools
from functools import partial

import numpy as np
import pytest
import torch

from aiayn.data.batching import (
    TokenBatchSampler,
    collate_pairs,
    padding_efficiency,
    pair_lengths,
    plan_batches,
)
from aiayn.errors import ConfigError


def random_lengths(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    src = rng.integers(1, 80, size=n)
    tgt = np.clip(src + rng.integers(-10, 11, size=n), 1, None) + 1  # +1: collated <s>/</s>
    return np.stack([src, tgt], axis=1)  # (N, 2)


def batch_cost(batch: list[int], lengths: np.ndarray) -> int:
    """n × max(S, T): the larger of the padded source and target tensors."""
    return len(batch) * int(lengths[batch].max())


def test_pair_lengths_counts_the_extra_target_token():
    assert pair_lengths([([5, 6, 7], [8]), ([], [9, 9])]).tolist() == [[3, 2], [0, 3]]


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize(("max_tokens", "max_sentences"), [(300, None), (1000, 16), (100, 3)])
def test_plan_respects_limits_and_covers_each_example_once(bucket, max_tokens, max_sentences):
    lengths = random_lengths()
    plan = plan_batches(lengths, max_tokens, max_sentences, bucket=bucket)
    batches = list(plan)
    assert all(batch_cost(b, lengths) <= max_tokens for b in batches)
    assert all(len(b) >= 1 for b in batches)
    if max_sentences is not None:
        assert max(len(b) for b in batches) <= max_sentences
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    # Greedy filling: no batch could have taken the next batch's first example.
    for b, nxt in itertools.pairwise(batches):
        full = max_sentences is not None and len(b) == max_sentences
        assert full or batch_cost([*b, nxt[0]], lengths) > max_tokens


def test_bucketing_pads_less_than_given_order():
    lengths = random_lengths()
    bucketed = padding_efficiency(plan_batches(lengths, 1000), lengths)
    unsorted = padding_efficiency(plan_batches(lengths, 1000, bucket=False), lengths)
    assert bucketed > 0.9
    assert bucketed > unsorted + 0.2
    # The generic path (plain lists) agrees with the BatchPlan fast path.
    as_lists = list(plan_batches(lengths, 1000))
    assert padding_efficiency(as_lists, lengths) == pytest.approx(bucketed)


def test_padding_efficiency_by_hand():
    lengths = [(2, 3), (4, 1)]
    # One batch: S = 4, T = 3 → padded 2 × 7 = 14; real 2 + 3 + 4 + 1 = 10.
    assert padding_efficiency([[0, 1]], lengths) == pytest.approx(10 / 14)
    assert padding_efficiency([[0], [1]], lengths) == pytest.approx(1.0)


def test_example_longer_than_max_tokens_is_an_error():
    lengths = [(5, 6), (300, 20), (7, 8)]
    with pytest.raises(ConfigError, match=r"example 1 has 300 tokens.*max_tokens is 100"):
        plan_batches(lengths, 100)
    with pytest.raises(ConfigError):
        TokenBatchSampler(lengths, 100)


def test_epoch_covers_everything_once_and_respects_max_tokens():
    lengths = random_lengths()
    sampler = TokenBatchSampler(lengths, 500, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(sampler.plan)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(batch_cost(b, lengths) <= 500 for b in batches)
    assert sampler.epoch == 1  # a finished epoch moves on


def test_seed_determinism_and_epochs_differ():
    lengths = random_lengths()
    a, b = TokenBatchSampler(lengths, 500, seed=7), TokenBatchSampler(lengths, 500, seed=7)
    epoch0, epoch1 = list(a), list(a)
    assert epoch0 == list(b) and epoch1 == list(b)
    assert epoch0 != epoch1
    assert sorted(map(tuple, epoch0)) == sorted(map(tuple, epoch1))  # same batches, new order
    assert list(TokenBatchSampler(lengths, 500, seed=8)) != epoch0
    assert a.epoch_batches(1) == epoch1


def test_no_shuffle_keeps_plan_order():
    lengths = random_lengths(200)
    sampler = TokenBatchSampler(lengths, 500, shuffle=False)
    assert list(sampler) == list(sampler.plan) == list(sampler)


def test_resume_from_state_dict_sees_the_same_batches():
    lengths = random_lengths()
    reference = TokenBatchSampler(lengths, 400, seed=1)
    full = list(reference) + list(reference)  # epochs 0 and 1

    run = TokenBatchSampler(lengths, 400, seed=1)
    it = iter(run)
    seen = [next(it) for _ in range(17)]
    state = run.state_dict()
    assert (state["epoch"], state["index"]) == (0, 17)

    resumed = TokenBatchSampler(lengths, 400, seed=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(0)  # what a training loop does each epoch: must not rewind
    after = list(resumed) + list(resumed)
    assert seen + after == full


def test_resume_at_the_end_of_an_epoch_starts_the_next():
    lengths = random_lengths(500)
    run = TokenBatchSampler(lengths, 400, seed=1)
    it = iter(run)
    for _ in range(len(run)):
        next(it)
    state = run.state_dict()  # taken after the last batch, before the loop noticed the end
    resumed = TokenBatchSampler(lengths, 400, seed=1)
    resumed.load_state_dict(state)
    assert list(resumed) == run.epoch_batches(1)


def test_resume_with_different_settings_is_refused():
    lengths = random_lengths(500)
    state = TokenBatchSampler(lengths, 400, seed=1).state_dict()
    with pytest.raises(ConfigError, match="seed 1 -> 2"):
        TokenBatchSampler(lengths, 400, seed=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="plan_fingerprint"):
        TokenBatchSampler(lengths[::-1], 400, seed=1).load_state_dict(state)


def test_set_epoch_jumps_to_the_start_of_another_epoch():
    lengths = random_lengths(500)
    sampler = TokenBatchSampler(lengths, 400, seed=5)
    next(iter(sampler))
    sampler.set_epoch(3)
    assert list(sampler) == sampler.epoch_batches(3)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_partition_each_epoch(world_size):
    lengths = random_lengths()
    samplers = [
        TokenBatchSampler(lengths, 300, seed=2, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    total = len(samplers[0].plan)
    for epoch in range(2):
        per_rank = [s.epoch_batches(epoch) for s in samplers]
        assert {len(b) for b in per_rank} == {total // world_size}  # ranks stay in step
        examples = [i for batches in per_rank for b in batches for i in b]
        assert len(examples) == len(set(examples))  # no example on two ranks
        dropped = len(lengths) - len(examples)
        assert dropped <= sum(sorted(map(len, samplers[0].plan))[-(world_size - 1) :])
        assert sum(len(b) for b in per_rank) == total - total % world_size
    # Rank r walks the same global order as a single process, taking every w-th batch.
    single = TokenBatchSampler(lengths, 300, seed=2).epoch_batches(0)
    assert samplers[1].epoch_batches(0) == single[1 : len(samplers[1]) * world_size : world_size]


def test_too_few_batches_for_the_world_is_an_error():
    with pytest.raises(ConfigError, match="2 ranks"):
        TokenBatchSampler([(3, 3)], 100, world_size=2)


def test_collate_shapes_and_special_tokens():
    pairs = [([5, 6, 7], [8, 9]), ([10], [11, 12, 13, 14])]
    batch = collate_pairs(pairs)
    assert batch.src.shape == (2, 3) and batch.tgt_in.shape == (2, 5)
    assert batch.tgt_out.shape == (2, 5)
    assert all(t.dtype == torch.long for t in batch)
    assert batch.src.tolist() == [[5, 6, 7], [10, 0, 0]]
    assert batch.tgt_in.tolist() == [[1, 8, 9, 0, 0], [1, 11, 12, 13, 14]]
    assert batch.tgt_out.tolist() == [[8, 9, 2, 0, 0], [11, 12, 13, 14, 2]]
    # Teacher forcing: where the input is not padding, the output is the input shifted by one.
    assert torch.equal(
        batch.tgt_in[:, 1:], torch.where(batch.tgt_in[:, 1:] > 0, batch.tgt_out[:, :-1], 0)
    )
    # Collated shapes are what pair_lengths predicts, so the sampler's budget is the real one.
    S, T = pair_lengths(pairs).max(axis=0)
    assert (batch.src.shape[1], batch.tgt_in.shape[1]) == (S, T)


def test_collate_custom_ids_and_dataloader():
    pairs = [([5, 6], [7]), ([8], [9, 10])] * 20
    lengths = pair_lengths(pairs)
    sampler = TokenBatchSampler(lengths, 12, seed=0)
    collate = partial(collate_pairs, pad_id=3, bos_id=4, eos_id=5)
    loader = torch.utils.data.DataLoader(pairs, batch_sampler=sampler, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == len(sampler)
    for batch in batches:
        B, T = batch.tgt_in.shape
        assert B * max(batch.src.shape[1], T) <= 12
        assert (batch.tgt_in[:, 0] == 4).all()
        assert ((batch.tgt_out == 5).sum(dim=1) == 1).all()
    one = collate([([5, 6], [7])])
    assert one.tgt_in.tolist() == [[4, 7]] and one.tgt_out.tolist() == [[7, 5]]


def grown_lengths(epoch: int) -> np.ndarray:
    """Each epoch's lengths: the base ones, each example longer by its own random amount (what
    BPE-dropout's finer segmentations do)."""
    base = random_lengths(600)
    return base + np.random.default_rng(epoch).integers(0, 12, size=base.shape)


def test_epoch_lengths_plan_each_epoch_on_its_own_lengths():
    sampler = TokenBatchSampler(random_lengths(600), 400, seed=1, epoch_lengths=grown_lengths)
    for epoch in (0, 1):
        lengths = grown_lengths(epoch)
        batches = list(sampler)  # epoch 0, then 1
        assert all(b.epoch == epoch for b in batches)  # each batch says whose lengths it fits
        assert all(batch_cost(b, lengths) <= 400 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(600))  # every example once
        assert padding_efficiency(batches, lengths) > padding_efficiency(sampler.plan, lengths)
    assert sampler.plan_for(0) is not sampler.plan_for(1)


def test_epoch_lengths_resume_mid_epoch_sees_the_same_batches():
    def make():
        return TokenBatchSampler(random_lengths(600), 400, seed=1, epoch_lengths=grown_lengths)

    full = [list(b) for b in itertools.chain(make().epoch_batches(0), make().epoch_batches(1))]
    run = make()
    it = iter(run)
    seen = [next(it) for _ in range(9)]
    resumed = make()
    resumed.load_state_dict(run.state_dict())
    after = list(resumed) + list(resumed)
    assert [list(b) for b in seen + after] == full
    assert [b.epoch for b in after][-1] == 1
