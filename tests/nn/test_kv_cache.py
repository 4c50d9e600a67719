"""The KV cache appends, grows past its capacity, and reorders batch rows."""

import torch

from aiayn.nn.kv_cache import DecoderCache, KVCache, StaticKV


def test_append_and_grow_keep_every_step():
    cache = KVCache(capacity=2)
    steps = [torch.randn(2, 3, 1, 4) for _ in range(5)]
    for t, step in enumerate(steps):
        k, _ = cache.update(step, step * 2)
        assert k.shape == (2, 3, t + 1, 4) and cache.length == t + 1
    assert torch.equal(cache.k, torch.cat(steps, dim=2))
    assert torch.equal(cache.v, torch.cat(steps, dim=2) * 2)


def test_reorder_selects_rows():
    cache = KVCache()
    x = torch.arange(3.0)[:, None, None, None].expand(3, 1, 2, 1).contiguous()
    cache.update(x, x)
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.k[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0]


def test_reorder_between_appends_and_growth_equals_reordering_the_whole_history():
    cache = KVCache(capacity=3)
    history = torch.empty(4, 2, 0, 5)  # (B, H, steps, Dh): what the cache must hold
    for index in ([3, 3, 0, 1], [1, 2, 2, 0], [0, 0, 0, 3], [2, 1, 0, 3]):
        step = torch.randn(4, 2, 1, 5)
        cache.update(step, -step)
        history = torch.cat([history, step], dim=2)
        cache.reorder(torch.tensor(index))
        history = history[index]
        assert torch.equal(cache.k, history) and torch.equal(cache.v, -history)
    assert cache.length == 4  # grew past capacity 3 after reorders


def test_decoder_cache_length_and_static_cross():
    cache = DecoderCache(n_layers=2)
    assert cache.length == 0
    cache.self_attn[0].update(torch.randn(1, 1, 3, 2), torch.randn(1, 1, 3, 2))
    assert cache.length == 3
    static = StaticKV()
    assert not static.filled
    static.update(torch.randn(2, 1, 4, 2), torch.randn(2, 1, 4, 2))
    assert static.filled and static.length == 4
