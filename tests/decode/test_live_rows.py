"""Decoding pays only for live work, and outputs stay token-identical: finished rows leave the
batch (greedy and beam), the cache starts small and grows, a sentence's output does not depend
on its batch, greedy = beam 1."""

from __future__ import annotations

import pytest
import torch

from aiayn.decode import beam_search, generate, greedy_decode
from aiayn.decode.greedy import CACHE_START, _should_compact
from aiayn.models import EncoderDecoder

from conftest import BOS, EOS, PAD, random_ids, small_config

V = 50


def model_with_bias(seed=0, eos=0.0):
    """A small random Transformer whose </s> logit is raised by `eos` (sentences then end at
    different steps); `model.rows` records the batch size of every decoder step."""
    torch.manual_seed(seed)
    model = EncoderDecoder(small_config(tie_embeddings="none")).eval()
    add = torch.zeros(V)
    add[EOS], add[PAD], add[BOS] = eos, -30.0, -30.0
    model.rows = []

    def hook(module, inputs, out):
        model.rows.append(out.shape[0])
        return out + add

    model.generator.register_forward_hook(hook)
    return model


def padded(lengths, seed=1):
    torch.manual_seed(seed)
    src = random_ids(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    return src


def strip(row):
    return row[: row.index(EOS)] if EOS in row else [t for t in row if t != PAD]


LENGTHS = [5, 3, 7, 4, 6, 2, 5, 3, 6, 4]


def test_greedy_rows_leave_the_batch_and_outputs_equal_each_sentence_alone():
    model = model_with_bias(eos=1.5)
    src = padded(LENGTHS)
    out = greedy_decode(model, src, BOS, EOS, extra_len=30).tolist()
    lengths = [row.index(EOS) + 1 if EOS in row else len(strip(row)) for row in out]
    assert len(set(lengths)) > 2  # rows end at different steps
    assert min(model.rows) < len(LENGTHS)  # …and leave the batch
    assert sum(model.rows) < len(LENGTHS) * max(lengths)  # fewer row-steps than a full batch
    for i, n in enumerate(LENGTHS):
        alone = greedy_decode(model, src[i : i + 1, :n], BOS, EOS, extra_len=30)[0].tolist()
        assert strip(out[i]) == strip(alone)
        # after </s> (or the limit) only padding
        k = lengths[i]
        assert all(t == PAD for t in out[i][k:])


def test_a_sentence_does_not_depend_on_its_neighbours():
    model = model_with_bias(eos=1.5)
    src = padded(LENGTHS)
    base = generate(model, src, BOS, EOS, beam_size=1, extra_len=30)
    perm = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(3))
    shuffled = generate(model, src[perm], BOS, EOS, beam_size=1, extra_len=30)
    assert [base[i] for i in perm.tolist()] == shuffled
    for k in (3, 4):
        beams = beam_search(model, src, BOS, EOS, beam_size=k, extra_len=30)
        beams_shuffled = beam_search(model, src[perm], BOS, EOS, beam_size=k, extra_len=30)
        assert [beams[i][0].tokens for i in perm.tolist()] == [h[0].tokens for h in beams_shuffled]


def test_greedy_equals_beam_of_one_with_rows_leaving():
    model = model_with_bias(eos=1.5)
    src = padded(LENGTHS)
    greedy = [strip(r) for r in greedy_decode(model, src, BOS, EOS, extra_len=30).tolist()]
    beam1 = beam_search(model, src, BOS, EOS, beam_size=1, alpha=0.0, extra_len=30)
    assert greedy == [h[0].tokens for h in beam1]


@pytest.mark.parametrize("beam", [1, 4])
def test_outputs_longer_than_the_first_cache_grow_it(beam):
    model = model_with_bias(eos=-30.0)  # never ends: every output runs to its limit
    src = padded([4, 2])
    limit = 3 * CACHE_START + 1
    out = generate(model, src, BOS, EOS, beam_size=beam, max_len=limit, extra_len=100)
    assert [len(o) for o in out] == [limit, limit]
    # the same tokens as a reference whose cache never needs to grow
    ref = _reference_greedy(model, src, limit) if beam == 1 else None
    if ref is not None:
        assert out == ref


def _reference_greedy(model, src, steps):
    """No cache: re-run the whole prefix each step."""
    prefix = torch.full((src.shape[0], 1), BOS)
    for _ in range(steps):
        logits = model(src, prefix)[:, -1]
        logits[:, [PAD, BOS, EOS]] = float("-inf")
        prefix = torch.cat([prefix, logits.argmax(-1, keepdim=True)], dim=1)
    return prefix[:, 1:].tolist()


def test_compaction_rule():
    assert not _should_compact(0, 64)
    assert not _should_compact(1, 64)  # one finished row of 64: keep decoding it a while
    assert _should_compact(8, 64)
    assert _should_compact(1, 5)  # small batches compact at once


def test_run_length():
    from aiayn.nn.kv_cache import _run_length

    assert _run_length(torch.tensor([0, 0, 0, 1, 1, 1])) == 3
    assert _run_length(torch.tensor([2, 2])) == 2
    for rows in ([0, 1, 2], [0, 0, 1], [0, 0, 1, 2], [3]):
        assert _run_length(torch.tensor(rows)) == 1


def test_beams_share_their_sources_cross_attention_kv(monkeypatch):
    from aiayn.nn.kv_cache import StaticKV

    seen = []
    original = StaticKV.reorder

    def spy(self, index):
        original(self, index)
        seen.append((self.group, self.k.shape[0], index.shape[0]))

    monkeypatch.setattr(StaticKV, "reorder", spy)
    model = model_with_bias(eos=1.5)
    src = padded(LENGTHS[:4])
    out = beam_search(model, src, BOS, EOS, beam_size=3, extra_len=30)
    # one stored row per source, read by its 3 beams: never 3 copies
    assert seen and all(group == 3 and rows * 3 == batch for group, rows, batch in seen)
    for i, n in enumerate(LENGTHS[:4]):  # and each sentence as alone (where K/V are not shared)
        alone = beam_search(model, src[i : i + 1, :n], BOS, EOS, beam_size=3, extra_len=30)
        assert out[i][0].tokens == alone[0][0].tokens


def test_grouped_cross_attention_equals_one_row_each():
    from aiayn.nn.attention import MultiHeadAttention
    from aiayn.nn.kv_cache import StaticKV

    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4).eval()
    memory = torch.randn(2, 5, 16)  # 2 sources
    mask = torch.ones(6, 1, 1, 5, dtype=torch.bool)
    mask[3:, ..., 4:] = False  # source 1 is padded: its 3 beams hide key 4
    query = torch.randn(6, 1, 16)  # 2 sources × 3 beams
    shared, each = StaticKV(), StaticKV()
    with torch.inference_mode():
        attn(memory[:, :1], memory, cache=shared)  # fill with 2 rows
        shared.reorder(torch.tensor([0, 0, 0, 1, 1, 1]))
        assert shared.group == 3 and shared.k.shape[0] == 2
        attn(memory.repeat_interleave(3, 0)[:, :1], memory.repeat_interleave(3, 0), cache=each)
        got, _ = attn(query, mask=mask, cache=shared)
        want, _ = attn(query, mask=mask, cache=each)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
