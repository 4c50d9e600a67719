"""TranslationTask options: lowercased data (a lowercasing tokenizer, validation BLEU scored
without case), the R-Drop loss, token dropout and BPE-dropout."""

import pytest
import torch
from torch.testing import assert_close

import aiayn.translator
from aiayn.cli import build_parser
from aiayn.cli.train import build_configs
from aiayn.config import ModelConfig
from aiayn.data.batching import padding_efficiency, pair_lengths
from aiayn.errors import ConfigError
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tasks.translation import METRICS, TranslationConfig, TranslationTask, prepare_data
from aiayn.train.loss import label_smoothed_nll, r_drop_loss

SRC = ["A man in a Blue shirt.", "Two Dogs run.", "A Girl climbs into a wooden playhouse."] * 10
TGT = ["Ein Mann in einem blauen Hemd.", "Zwei Hunde rennen.", "Ein Mädchen klettert."] * 10


@pytest.fixture
def files(tmp_path):
    paths = [tmp_path / name for name in ("train.en", "train.de", "valid.en", "valid.de")]
    for path, lines in zip(paths, (SRC, TGT, SRC[:3], TGT[:3]), strict=True):
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def tiny_model(data, dropout: float = 0.1) -> EncoderDecoder:
    tokenizers = data.tokenizers
    return EncoderDecoder(ModelConfig.create(
        src_vocab_size=tokenizers.source.vocab_size, tgt_vocab_size=tokenizers.target.vocab_size,
        tie_embeddings="all" if tokenizers.is_shared else "decoder", d_model=16, n_heads=2,
        d_ff=32, n_encoder_layers=1, n_decoder_layers=1, max_len=64, dropout=dropout,
    ))  # fmt: skip


def validate_with_lowercase_output(files, monkeypatch, lowercase: bool) -> dict[str, float]:
    """Validation scores of a model that writes each reference, lowercased."""
    data = prepare_data(*files, vocab_size=300, max_len=64, lowercase=lowercase)
    task = TranslationTask(tiny_model(data), data, TranslationConfig(max_tokens=200))

    def oracle(model, tokenizers, sources, **kwargs):
        return [TGT[SRC.index(s)].lower() for s in sources]

    monkeypatch.setattr(aiayn.translator, "translate_sentences", oracle)
    return task.validate(task.model)


def test_lowercase_data_trains_a_lowercasing_tokenizer(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64, lowercase=True)
    assert data.tokenizers.source.lowercases and data.tokenizers.target.lowercases
    tok = data.tokenizers.target
    assert data.train[0][1] == tok.encode(TGT[0].lower(), add_eos=False)
    assert not prepare_data(*files, vocab_size=300, max_len=64).tokenizers.target.lowercases


def test_validation_of_a_lowercasing_model_ignores_case(files, monkeypatch) -> None:
    # The lowercasing model cannot write "Ein"; it is scored against "ein …" references.
    scores = validate_with_lowercase_output(files, monkeypatch, lowercase=True)
    assert scores["bleu"] == pytest.approx(100.0) and scores["exact_match"] == 1.0
    assert set(scores) == set(METRICS)  # the metrics the task declares (higher or lower better)
    # A case-keeping model writing the same lowercase text is scored against cased references.
    scores = validate_with_lowercase_output(files, monkeypatch, lowercase=False)
    assert scores["bleu"] < 90.0 and scores["exact_match"] == 0.0


def test_lowercase_and_r_drop_flags_set_their_options() -> None:
    common = ["train", "--train-src", "a", "--train-tgt", "b", "--valid-src", "c"]
    common += ["--valid-tgt", "d", "--out", "e"]
    _, _, task = build_configs(build_parser().parse_args([*common, "--lowercase"]))
    assert task.lowercase and task.r_drop == 0.0
    _, _, task = build_configs(build_parser().parse_args([*common, "--r-drop", "5"]))
    assert not task.lowercase and task.r_drop == 5.0 and task.token_dropout == 0.0
    _, _, task = build_configs(build_parser().parse_args([*common, "--token-dropout", "0.1"]))
    assert task.token_dropout == 0.1 and task.bpe_dropout == 0.0
    _, _, task = build_configs(build_parser().parse_args([*common, "--bpe-dropout", "0.1"]))
    assert task.bpe_dropout == 0.1 and task.token_dropout == 0.0


def test_token_dropout_hides_input_tokens_of_training_batches_only(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64)
    task = TranslationTask(tiny_model(data), data, TranslationConfig(token_dropout=0.5))
    indices = list(range(len(data.train)))
    plain = task._collate([data.train[i] for i in indices])
    torch.manual_seed(3)
    noisy = task.collate(indices, torch.device("cpu"))
    unk = data.tokenizers.source.unk_id
    assert torch.equal(noisy.tgt_out, plain.tgt_out)  # the loss still scores the reference
    for got, clean in ((noisy.src, plain.src), (noisy.tgt_in, plain.tgt_in)):
        changed = got != clean
        assert (got[changed] == unk).all()
        specials = (clean == task.pad_id) | (clean == task.bos_id) | (clean == task.eos_id)
        assert not changed[specials].any()  # padding, <s> and </s> are never hidden
        rate = changed[~specials & (clean != unk)].float().mean().item()
        assert 0.3 < rate < 0.7, rate
    torch.manual_seed(3)  # the same seed hides the same tokens
    assert torch.equal(task.collate(indices, torch.device("cpu")).src, noisy.src)
    # off by default
    assert torch.equal(
        TranslationTask(tiny_model(data), data).collate(indices, "cpu").src, plain.src
    )
    with pytest.raises(ConfigError, match="'token_dropout'"):
        TranslationConfig(token_dropout=1.0)


def test_r_drop_runs_each_batch_twice_in_one_forward_in_training_only(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64)
    model = tiny_model(data, dropout=0.3)
    task = TranslationTask(model, data, TranslationConfig(r_drop=5.0))
    batch = task.collate(list(range(6)), torch.device("cpu"))
    rows = []
    model.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    torch.manual_seed(7)
    got = task.loss(model.train(), batch)
    torch.manual_seed(7)  # the same dropout masks: the loss is R-Drop's of the two halves
    logits_a, logits_b = model(batch.src.repeat(2, 1), batch.tgt_in.repeat(2, 1)).chunk(2)
    expected = r_drop_loss(logits_a, logits_b, batch.tgt_out, 0.1, task.pad_id, 5.0)
    assert rows[0] == 2 * batch.src.shape[0]  # one forward over the batch stacked on itself
    assert_close(got.loss, expected.loss)
    assert got.n_tokens == int((batch.tgt_out != task.pad_id).sum())
    # Evaluation (validation loss) runs the batch once, without the consistency term.
    plain = label_smoothed_nll(model.eval()(batch.src, batch.tgt_in), batch.tgt_out, 0.1, 0)
    assert_close(task.loss(model, batch).loss, plain.loss)
    # Without dropout both passes are the same network: the plain loss exactly.
    model = tiny_model(data, dropout=0.0)
    rdrop = TranslationTask(model, data, TranslationConfig(r_drop=5.0)).loss(model.train(), batch)
    assert_close(rdrop.loss, TranslationTask(model, data).loss(model, batch).loss)


@pytest.mark.parametrize(
    "start, before, after",
    [({"r_drop_start_step": 5}, (4, 0.0), (5, 0.0)), ({"r_drop_start_minutes": 2.0}, (90, 1.9),
     (1, 2.0)), ({}, (1, 0.0), (1, 0.0))],
)  # fmt: skip
def test_late_r_drop_runs_the_plain_loss_until_its_start(files, start, before, after) -> None:
    """r_drop_start_step / _minutes: one pass per batch before the start, two from it on (the
    trainer reports each update's step and minutes through set_progress)."""
    data = prepare_data(*files, vocab_size=300, max_len=64)
    model = tiny_model(data, dropout=0.3).train()
    task = TranslationTask(model, data, TranslationConfig(r_drop=5.0, **start))
    batch = task.collate(list(range(6)), torch.device("cpu"))
    rows = []
    model.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    task.set_progress(*before)
    task.loss(model, batch)
    task.set_progress(*after)
    task.loss(model, batch)
    b = batch.src.shape[0]
    assert rows == ([2 * b, 2 * b] if not start else [b, 2 * b])


@pytest.mark.parametrize(
    "fields, message",
    [({"r_drop_start_step": 100}, "set r_drop > 0"),
     ({"r_drop": 5, "r_drop_start_minutes": 0}, "must be positive"),
     ({"r_drop": 5, "r_drop_start_step": 10, "r_drop_start_minutes": 30}, "not both")],
)  # fmt: skip
def test_late_r_drop_config_errors_name_the_field(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        TranslationConfig(**fields)


@pytest.mark.parametrize("joint", [True, False])
def test_bpe_dropout_resegments_training_text_each_epoch_without_changing_it(files, joint) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64, joint=joint)
    task = TranslationTask(
        tiny_model(data), data, TranslationConfig(max_tokens=120, bpe_dropout=0.3)
    )
    src_tok, tgt_tok = data.tokenizers.source, data.tokenizers.target
    first, second = task.epoch_pairs(0), task.epoch_pairs(1)
    assert first == task.epoch_pairs(0)  # a function of (seed, epoch): resumes see the same
    assert first != second and first != data.train
    for pairs in (first, second):  # the same sentences, in more pieces
        assert [src_tok.decode(s) for s, _ in pairs] == [src_tok.decode(s) for s, _ in data.train]
        assert [tgt_tok.decode(t) for _, t in pairs] == [tgt_tok.decode(t) for _, t in data.train]
        assert all(s[-1] == src_tok.eos_id and src_tok.eos_id not in s[:-1] for s, _ in pairs)
        assert sum(len(s) + len(t) for s, t in pairs) > sum(len(s) + len(t) for s, t in data.train)
    # a batch is collated from its own epoch's segmentation, whatever the sampler's position
    sampler = task.train_sampler(0, 1)
    indices = sampler.epoch_batches(1)[0]
    batch = task.collate(indices, torch.device("cpu"))
    assert torch.equal(batch.src, task._collate([second[i] for i in indices]).src)
    assert torch.equal(batch.tgt_out, task._collate([second[i] for i in indices]).tgt_out)
    # each epoch is planned on its own lengths, so resegmenting does not inflate padding
    lengths = pair_lengths(second)
    fixed = padding_efficiency(sampler.plan, lengths)
    assert padding_efficiency(sampler.plan_for(1), lengths) > fixed
    assert all(
        len(b) * lengths[b].max() <= task.config.max_tokens for b in sampler.epoch_batches(1)
    )


def test_bpe_dropout_keeps_the_plain_pair_when_a_side_would_outgrow_the_model(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64)
    longest = max(max(len(s), len(t)) for s, t in data.train)
    model = EncoderDecoder(tiny_model(data).config.replace(max_len=longest + 1))
    pairs = TranslationTask(model, data, TranslationConfig(bpe_dropout=0.5)).epoch_pairs(0)
    assert max(max(len(s), len(t)) for s, t in pairs) <= longest
    assert any(pair == plain for pair, plain in zip(pairs, data.train, strict=True))
    assert any(pair != plain for pair, plain in zip(pairs, data.train, strict=True))


def test_bpe_dropout_needs_bpe(files) -> None:
    data = prepare_data(*files, vocab_size=600, max_len=64, kind="wordpiece")
    with pytest.raises(ConfigError, match="bpe_dropout needs BPE"):
        TranslationTask(tiny_model(data), data, TranslationConfig(bpe_dropout=0.1))
    with pytest.raises(ConfigError, match="'bpe_dropout'"):
        TranslationConfig(bpe_dropout=-0.1)


def test_bidirectional_epochs_add_every_pair_reversed_then_stop(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64)
    task = TranslationTask(
        tiny_model(data), data, TranslationConfig(max_tokens=120, bidirectional_epochs=2)
    )
    tok = data.tokenizers.source
    for epoch in (0, 1):
        pairs = task.epoch_pairs(epoch)
        assert pairs[: len(data.train)] == data.train  # the real direction, unchanged
        backward = pairs[len(data.train) :]
        assert len(backward) == len(data.train)
        # (German + </s>, English): the same sentences, roles swapped, </s> moved with them
        assert [tok.decode(s) for s, _ in backward] == [tok.decode(t) for _, t in data.train]
        assert [tok.decode(t) for _, t in backward] == [tok.decode(s) for s, _ in data.train]
        assert all(s[-1] == tok.eos_id and tok.eos_id not in t for s, t in backward)
    assert task.epoch_pairs(2) is data.train  # then the real direction alone
    # each epoch is planned on its own pairs: twice the batches while both directions train
    sampler = task.train_sampler(0, 1)
    n0, n2 = len(sampler.plan_for(0)), len(sampler.plan_for(2))
    assert n0 > 1.5 * n2
    covered = sorted(i for b in sampler.epoch_batches(0) for i in b)
    assert covered == list(range(2 * len(data.train)))  # every pair, both ways, once
    # a batch of a bidirectional epoch collates the reversed pairs it names
    indices = next(b for b in sampler.epoch_batches(0) if max(b) >= len(data.train))
    batch = task.collate(indices, torch.device("cpu"))
    expected = task._collate([task.epoch_pairs(0)[i] for i in indices])
    assert torch.equal(batch.src, expected.src) and torch.equal(batch.tgt_out, expected.tgt_out)
    # off by default: one direction from the first epoch
    assert TranslationTask(tiny_model(data), data).epoch_pairs(0) is data.train


def test_bidirectional_epochs_skip_a_reversal_too_long_for_the_model(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64)
    longest_tgt = max(len(t) for _, t in data.train)
    # a model whose positions fit the longest target only without its new </s>
    model = EncoderDecoder(tiny_model(data).config.replace(max_len=longest_tgt + 1))
    pairs = TranslationTask(model, data, TranslationConfig(bidirectional_epochs=1)).epoch_pairs(0)
    backward = pairs[len(data.train) :]
    assert 0 < len(backward) < len(data.train)
    assert max(len(s) for s, _ in backward) <= longest_tgt


def test_bidirectional_epochs_need_a_shared_vocabulary_and_a_flag(files) -> None:
    data = prepare_data(*files, vocab_size=300, max_len=64, joint=False)
    with pytest.raises(ConfigError, match="shared by both languages"):
        TranslationTask(tiny_model(data), data, TranslationConfig(bidirectional_epochs=1))
    with pytest.raises(ConfigError, match="'bidirectional_epochs'"):
        TranslationConfig(bidirectional_epochs=-1)
    args = ["train", "--train-src", "a", "--train-tgt", "b", "--valid-src", "c"]
    args += ["--valid-tgt", "d", "--out", "e", "--bidirectional-epochs", "8"]
    assert build_configs(build_parser().parse_args(args))[2].bidirectional_epochs == 8
