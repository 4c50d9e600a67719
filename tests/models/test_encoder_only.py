"""The encoder-only model (BERT): bidirectional attention, padding that changes nothing real,
segments that matter, the tied masked-LM head, BERT-base's size, and Hugging Face's outputs
from Hugging Face's weights."""

from __future__ import annotations

import re

import pytest
import torch
import transformers
from torch.testing import assert_close

from aiayn.config import EncoderOnlyConfig
from aiayn.errors import ConfigError
from aiayn.models import load_pretrained, presets, save_pretrained
from aiayn.models.convert import from_hf_bert
from aiayn.models.encoder_only import EncoderOnly

from conftest import PAD, random_ids

VOCAB = 50


def bert(**overrides) -> EncoderOnly:
    fields = dict(vocab_size=VOCAB, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_len=24,
                  num_labels=3, dropout=0.0, attention_dropout=0.0)  # fmt: skip
    return EncoderOnly(presets.bert_tiny(**{**fields, **overrides})).eval()


def padded(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), PAD)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out  # (B, width), padded on the right


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@torch.no_grad()
def test_padding_changes_no_real_position_nor_the_class(pooling):
    model = bert(pooling=pooling)
    rows = [random_ids(1, 7)[0], random_ids(1, 4)[0]]
    segments = [torch.tensor([0, 0, 0, 1, 1, 1, 1]), torch.tensor([0, 0, 1, 1])]
    for width in (7, 12):
        ids, segs = padded(rows, width), padded(segments, width)
        hidden, real, _ = model.encode(ids, segs)
        logits = model.classify(ids, segs)
        for i, row in enumerate(rows):
            alone_hidden, _, _ = model.encode(row[None], segments[i][None])
            assert_close(hidden[i, : len(row)], alone_hidden[0], atol=1e-5, rtol=1e-5)
            assert_close(logits[i], model.classify(row[None], segments[i][None])[0],
                         atol=1e-5, rtol=1e-5)  # fmt: skip
        assert real.sum().item() == 11


@torch.no_grad()
def test_attention_is_bidirectional():
    model = bert()
    ids = random_ids(1, 8)
    base = model(ids)
    changed = ids.clone()
    changed[0, 7] = (changed[0, 7] - 3 + 1) % (VOCAB - 3) + 3
    assert not torch.allclose(model(changed)[0, 0], base[0, 0])  # the first sees the last


@torch.no_grad()
def test_segment_ids_matter_and_default_to_segment_a():
    model = bert()
    ids = random_ids(2, 6)
    a = torch.zeros_like(ids)
    b = a.clone()
    b[:, 3:] = 1
    assert torch.equal(model(ids), model(ids, a))
    assert not torch.allclose(model(ids, a), model(ids, b))
    no_segments = bert(type_vocab_size=0)
    with pytest.raises(ValueError, match="no segment embeddings"):
        no_segments(ids, b)


def test_the_mlm_head_is_the_token_embedding():
    model = bert()
    assert model.mlm.weight is model.encoder.embed.weight
    names = [n for n, p in model.named_parameters() if p is model.encoder.embed.weight]
    assert names == ["encoder.embed.weight"]  # one parameter, counted once


def test_every_parameter_gets_a_gradient():
    for pooling in ("cls", "mean"):
        model = bert(pooling=pooling).train()
        ids = random_ids(2, 6)
        segments = torch.tensor([[0, 0, 0, 1, 1, 1]] * 2)
        (model(ids, segments).sum() + model.classify(ids, segments).sum()).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
        assert missing == [], missing


def test_bert_base_has_hugging_faces_parameter_count():
    with torch.device("meta"):
        ours = EncoderOnly(presets.bert_base()).num_parameters()
        theirs = sum(p.numel() for p in transformers.BertForMaskedLM(
            transformers.BertConfig()).parameters())  # fmt: skip
    assert ours == theirs == 109_514_298


def hf_config(**overrides) -> transformers.BertConfig:
    fields = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=24, num_labels=3)  # fmt: skip
    return transformers.BertConfig(**{**fields, **overrides})


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = random_ids(3, 9)
    ids[1, 6:] = PAD
    segments = torch.zeros_like(ids)
    segments[:, 4:] = 1
    return ids, segments, (ids != PAD).long()


@torch.no_grad()
def test_logits_equal_hugging_face_bert_for_masked_lm():
    hf = transformers.BertForMaskedLM(hf_config()).eval()
    ours = from_hf_bert(hf)
    ids, segments, attention = batch()
    theirs = hf(input_ids=ids, token_type_ids=segments, attention_mask=attention).logits
    real = attention.bool()
    assert_close(ours(ids, segments)[real], theirs[real], atol=1e-5, rtol=1e-5)
    assert ours.mlm.weight is ours.encoder.embed.weight  # the tie survives the conversion
    assert ours.config.num_labels == 0 and ours.classifier is None


@torch.no_grad()
def test_logits_equal_hugging_face_bert_for_sequence_classification():
    hf = transformers.BertForSequenceClassification(hf_config()).eval()
    ours = from_hf_bert(hf)
    ids, segments, attention = batch()
    theirs = hf(input_ids=ids, token_type_ids=segments, attention_mask=attention).logits
    assert theirs.std() > 0
    assert_close(ours.classify(ids, segments), theirs, atol=1e-5, rtol=1e-5)
    # ... and from a state dict with its config.json as a dict
    again = from_hf_bert(hf.state_dict(), hf.config.to_dict())
    assert_close(again.classify(ids, segments), theirs, atol=1e-5, rtol=1e-5)


def test_bert_variants_that_compute_something_else_are_refused():
    with pytest.raises(ConfigError, match="position_embedding_type"):
        from_hf_bert(transformers.BertModel(hf_config(position_embedding_type="relative_key")))
    hf = transformers.BertForMaskedLM(hf_config())
    state = {k: v for k, v in hf.state_dict().items() if "layer.1." not in k}
    with pytest.raises(
        ConfigError, match=re.escape("'encoder.layer.1.attention.self.query.weight'")
    ):
        from_hf_bert(state, hf.config)


@torch.no_grad()
def test_save_and_load_as_encoder_only(tmp_path):
    model = bert()
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert isinstance(loaded, EncoderOnly) and isinstance(loaded.config, EncoderOnlyConfig)
    ids = random_ids(2, 5)
    assert torch.equal(loaded.classify(ids), model.classify(ids))
    assert loaded.mlm.weight is loaded.encoder.embed.weight


@torch.no_grad()
def test_logits_at_selected_positions_are_those_of_the_full_output():
    model = bert()
    ids = random_ids(3, 7)
    only = torch.rand(3, 7) < 0.3
    only[0, 2] = True
    assert torch.equal(model(ids, only=only), model(ids)[only])
