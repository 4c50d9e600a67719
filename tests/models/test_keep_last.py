"""A [CLS] classifier (BERT's pooler, ViT's head) reads one position of the last layer, so only
that position queries the last block (`Stack(keep_last=)`): the same logits and gradients as
the whole last layer sliced afterwards, with less arithmetic, and the full path wherever the
shortcut would change the numbers (relative positions, a window, BatchNorm)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close
from torch.utils.flop_counter import FlopCounterMode

from aiayn.models import presets
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.vision import VisionTransformer
from aiayn.nn.pooling_mixer import PoolingMixer

from conftest import PAD, random_ids


def bert(**overrides) -> EncoderOnly:
    fields = dict(vocab_size=50, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_len=24,
                  num_labels=3, dropout=0.0, attention_dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    return EncoderOnly(presets.bert_tiny(**{**fields, **overrides}))


def vit(**overrides) -> VisionTransformer:
    fields = dict(image_size=8, patch_size=2, channels=1, n_layers=2, d_model=16, n_heads=2,
                  d_ff=32, num_labels=5, dropout=0.0, attention_dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    return VisionTransformer(presets.vit_tiny(**{**fields, **overrides}))


def ids_with_padding() -> torch.Tensor:
    torch.manual_seed(1)
    ids = random_ids(4, 12)
    ids[1, 7:] = PAD  # rows of different lengths: padding must stay out of [CLS]'s keys
    ids[3, 3:] = PAD
    return ids  # (4, 12)


def bert_logits_full(model: EncoderOnly, ids: torch.Tensor) -> torch.Tensor:
    hidden, _, _ = model.encode(ids)  # (B, T, D): every position through the last layer
    return model.classifier(model.classifier_dropout(model.pooler(hidden)))


def vit_logits_full(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    hidden, _ = model.encode(images)  # (B, T, D)
    return model.classifier(model.classifier_dropout(model.pool(hidden)))


BERTS = {
    "post-LN (BERT)": {},
    "pre-LN": {"norm_first": True},
    "one layer": {"n_layers": 1},
    "narrow keys": {"d_k": 4},
}


@pytest.mark.parametrize("overrides", BERTS.values(), ids=BERTS.keys())
def test_bert_cls_logits_and_gradients_equal_the_whole_last_layer(overrides):
    model = bert(**overrides)
    assert model.encoder._keeps_last
    ids = ids_with_padding()
    with torch.no_grad():
        assert_close(model.classify(ids), bert_logits_full(model, ids), rtol=1e-5, atol=1e-6)
    labels = torch.tensor([0, 2, 1, 2])
    grads = []
    for logits in (lambda: model.classify(ids), lambda: bert_logits_full(model, ids)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(logits(), labels).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_vit_cls_logits_equal_the_whole_last_layer():
    model = vit().eval()
    images = torch.randn(3, 1, 8, 8)
    assert model.encoder._keeps_last
    with torch.no_grad():
        assert_close(model(images), vit_logits_full(model, images), rtol=1e-5, atol=1e-6)


def linear_flops(fn) -> int:
    """FLOPs of the linear maps `fn` runs (torch's counter sees no CPU SDPA kernel, so the
    attention products themselves are left out on both paths)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    counts = counter.get_flop_counts()["Global"]
    return sum(n for op, n in counts.items() if str(op) in ("aten.addmm", "aten.mm"))


def test_the_last_layer_does_only_the_cls_rows_work():
    """The saving is there: of the last layer, only the K/V projections run over all T
    positions; W_Q, W_O and the FFN over [CLS] alone."""
    model = bert(n_layers=1).eval()
    ids = random_ids(2, 16)
    full = linear_flops(lambda: bert_logits_full(model, ids))
    short = linear_flops(lambda: model.classify(ids))
    d, ff, t, b = 32, 64, 16, 2
    per_token_skipped = 2 * (2 * d * d + 2 * d * ff)  # W_Q, W_O and the two FFN matrices
    assert full - short == b * (t - 1) * per_token_skipped


NOT_ELIGIBLE = {
    "rope (queries need their positions)": {"positional": "rope"},
    "batch norm (statistics over every token)": {"norm": "batch"},
    "pre-LN batch norm (the final norm's statistics too)": {"norm": "batch", "norm_first": True},
}


@pytest.mark.parametrize("overrides", NOT_ELIGIBLE.values(), ids=NOT_ELIGIBLE.keys())
def test_where_the_shortcut_would_change_the_numbers_the_full_layer_runs(overrides):
    """Training mode too: a BatchNorm normalises by the batch's own statistics there."""
    model = bert(**overrides)
    assert not model.encoder._keeps_last
    ids = ids_with_padding()
    with torch.no_grad():
        for mode in (model.eval, model.train):
            mode()
            torch.manual_seed(3)
            short = model.classify(ids)
            torch.manual_seed(3)
            assert_close(short, bert_logits_full(model, ids), rtol=0, atol=0)


def test_a_windowed_or_pooling_last_layer_keeps_every_position():
    windowed = bert(attention_window=2).eval()
    assert not windowed.encoder._keeps_last
    ids = ids_with_padding()
    with torch.no_grad():
        assert_close(windowed.classify(ids), bert_logits_full(windowed, ids), rtol=0, atol=0)
    pooling = vit(mixer="pooling", pooling="mean")
    assert not pooling.encoder._keeps_last


def test_a_mixer_swapped_in_after_construction_is_seen():
    """experiments.pooling_text replaces a built BERT's attention by 1-D pooling: [CLS] must
    then be read from the full last layer (pooling has no query/key split to shortcut)."""
    model = bert().eval()
    for block in model.encoder.layers:
        block.self_attn = PoolingMixer(3, dims=1)
    assert not model.encoder._keeps_last
    ids = ids_with_padding()
    with torch.no_grad():
        assert_close(model.classify(ids), bert_logits_full(model, ids), rtol=0, atol=0)


def test_attention_weights_for_the_explorer_still_cover_every_query():
    model = bert().eval()
    with torch.no_grad():
        _, _, weights = model.encode(ids_with_padding(), need_weights=True)
    assert [tuple(w.shape) for w in weights] == [(4, 4, 12, 12)] * 2
