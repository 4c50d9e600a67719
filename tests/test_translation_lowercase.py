"""The lowercase data option: a lowercasing tokenizer, and validation BLEU scored without case."""

import pytest

import aiayn.translator
from aiayn.cli import build_parser
from aiayn.cli.train import build_configs
from aiayn.config import ModelConfig
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tasks.translation import TranslationTask, prepare_data

SRC = ["A man in a Blue shirt.", "Two Dogs run.", "A Girl climbs into a wooden playhouse."] * 10
TGT = ["Ein Mann in einem blauen Hemd.", "Zwei Hunde rennen.", "Ein Mädchen klettert."] * 10


@pytest.fixture
def files(tmp_path):
    paths = [tmp_path / name for name in ("train.en", "train.de", "valid.en", "valid.de")]
    for path, lines in zip(paths, (SRC, TGT, SRC[:3], TGT[:3]), strict=True):
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def validate_with_lowercase_output(files, monkeypatch, lowercase: bool) -> dict[str, float]:
    """Validation scores of a model that writes each reference, lowercased."""
    data = prepare_data(*files, vocab_size=300, max_len=64, lowercase=lowercase)
    size = data.tokenizers.target.vocab_size
    tiny = ModelConfig(
        src_vocab_size=size, tgt_vocab_size=size, d_model=16, n_heads=2, d_ff=32,
        n_encoder_layers=1, n_decoder_layers=1, max_len=64,
    )  # fmt: skip
    task = TranslationTask(EncoderDecoder(tiny), data, max_tokens=200)

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
    # A case-keeping model writing the same lowercase text is scored against cased references.
    scores = validate_with_lowercase_output(files, monkeypatch, lowercase=False)
    assert scores["bleu"] < 90.0 and scores["exact_match"] == 0.0


def test_lowercase_flag_sets_the_data_option() -> None:
    common = ["train", "--train-src", "a", "--train-tgt", "b", "--valid-src", "c"]
    common += ["--valid-tgt", "d", "--out", "e"]
    _, _, data = build_configs(build_parser().parse_args([*common, "--lowercase"]))
    assert data.lowercase
    _, _, data = build_configs(build_parser().parse_args(common))
    assert not data.lowercase
