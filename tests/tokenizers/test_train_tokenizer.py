"""train_bpe / train_wordpiece: inputs (files, .gz, iterators), vocabulary size, options, errors."""

import gzip

import pytest

from aiayn.errors import ConfigError, DataError
from aiayn.tokenizers import (
    SPECIAL_TOKENS,
    UNK_ID,
    WORDPIECE_PREFIX,
    Tokenizer,
    train_bpe,
    train_wordpiece,
)

EN = [
    "A man in an orange hat starring at something.",
    "A little girl climbing into a wooden playhouse.",
    "Two men are at the stove preparing food.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "A woman with a large purse is walking by a gate.",
    "Two young guys with shaggy hair look at their hands.",
    "A man is smiling at a stuffed lion.",
    "Several men in hard hats are operating a giant pulley system.",
] * 3
DE = [
    "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
    "Zwei Männer stehen am Herd und bereiten Essen zu.",
    "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt Fenster.",
    "Eine Frau mit einer großen Geldbörse geht an einem Tor vorbei.",
    "Zwei junge Männer mit zotteligen Haaren betrachten ihre Hände.",
    "Ein Mann lächelt einen ausgestopften Löwen an.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
] * 3


def same(a: Tokenizer, b: Tokenizer) -> bool:
    """Same vocabulary, merges and pipeline: the serialized forms are equal."""
    return a.backend.to_str() == b.backend.to_str()


@pytest.fixture
def files(tmp_path):
    """EN as plain text, DE gzip-compressed, both with a trailing newline."""
    en, de = tmp_path / "train.en", tmp_path / "train.de.gz"
    en.write_text("\n".join(EN) + "\n", encoding="utf-8")
    with gzip.open(de, "wt", encoding="utf-8") as f:
        f.write("\n".join(DE) + "\n")
    return en, de


def test_files_plain_and_gzip_equal_iterator(files) -> None:
    en, de = files
    from_files = train_bpe([en, str(de)], vocab_size=400)
    from_lines = train_bpe(iter(EN + DE), vocab_size=400)
    assert same(from_files, from_lines)


def test_single_path_and_open_file(files) -> None:
    en, _ = files
    expected = train_bpe(iter(EN), vocab_size=300)
    assert same(train_bpe(en, vocab_size=300), expected)
    assert same(train_bpe(str(en), vocab_size=300), expected)
    with open(en, encoding="utf-8") as f:  # lines with "\n": the newline is not learned
        assert same(train_bpe(f, vocab_size=300), expected)


def test_gzip_detected_by_content_not_name(tmp_path) -> None:
    path = tmp_path / "train.txt"  # gzip data without the .gz suffix
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(DE))
    assert same(train_bpe(path, vocab_size=300), train_bpe(iter(DE), vocab_size=300))


def test_training_is_deterministic() -> None:
    assert same(train_bpe(iter(EN + DE), vocab_size=500), train_bpe(iter(EN + DE), vocab_size=500))


@pytest.mark.parametrize(("train", "size"), [(train_bpe, 400), (train_wordpiece, 600)])
def test_vocab_size_is_reached_exactly(train, size: int) -> None:
    tok = train(iter(EN + DE), vocab_size=size)
    assert tok.vocab_size == size
    assert sorted(tok.backend.get_vocab().values()) == list(range(size))  # no gaps in the ids


def test_min_frequency_limits_merges() -> None:
    # No pair occurs 10,000 times: only the special tokens and the 256 bytes remain.
    assert train_bpe(iter(EN), vocab_size=1000, min_frequency=10_000).vocab_size == 4 + 256
    assert train_bpe(iter(EN), vocab_size=1000, min_frequency=1).vocab_size > 400


def test_shared_vocabulary_covers_both_languages() -> None:
    tok = train_bpe(iter(EN + DE), vocab_size=500)
    assert tok.tokenize("Ein Mann")[1] == "ĠMann" and tok.tokenize("A man")[1] == "Ġman"


@pytest.mark.parametrize("train", [train_bpe, train_wordpiece])
def test_every_byte_is_in_the_vocabulary(train) -> None:
    # This is what makes <unk> impossible: any UTF-8 byte has a token, at word start and (for
    # WordPiece) inside a word, even if training never saw it there.
    tok = train(iter(EN), vocab_size=600)
    vocab = tok.backend.get_vocab()
    byte_chars = [tok.tokenize(chr(b))[0] for b in range(128)] + ["Ã", "¼", "ð", "Ł"]
    assert all(c in vocab for c in byte_chars)
    if train is train_wordpiece:
        assert all(WORDPIECE_PREFIX + c in vocab for c in byte_chars)
    text = "Übergrößenträger aßen Crème brûlée 😀 in Zürich"  # unseen letters inside words
    ids = tok.encode(text)
    assert UNK_ID not in ids
    assert tok.decode(ids) == text


@pytest.mark.parametrize("train", [train_bpe, train_wordpiece])
def test_lowercase_tokenizer_sees_and_writes_lowercase_only(train, tmp_path) -> None:
    lower = train(iter(EN + DE), vocab_size=600, lowercase=True)
    assert lower.lowercases
    text = "Ein Mann in einem BLAUEN Hemd. ÜBER Straßen"
    assert lower.encode(text) == lower.encode(text.lower())
    assert lower.decode(lower.encode(text)) == text.lower()
    # No learned token (one that decodes to 2+ characters) holds a capital: training saw
    # lowercase text only. Single bytes such as "A" are always in a byte-level vocabulary.
    pieces = [lower.decode([i]) for i in range(len(SPECIAL_TOKENS), lower.vocab_size)]
    assert [p for p in pieces if len(p.strip()) > 1 and p != p.lower()] == []
    assert [p for p in pieces if len(p.strip()) > 1 and "mann" in p]  # "Mann" was learned
    lower.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    assert loaded.lowercases and loaded.encode(text) == lower.encode(text)
    assert "lowercase=True" in repr(loaded) and "normalization=NFC" in repr(loaded)
    cased = train(iter(EN + DE), vocab_size=600)  # the default keeps case
    assert not cased.lowercases and cased.decode(cased.encode(text)) == text


def test_lowercase_follows_unicode_normalization() -> None:
    # Composed "É" and decomposed "E" + U+0301 lowercase to the same NFC "é".
    tok = train_bpe(iter(EN), vocab_size=300, lowercase=True)
    assert tok.decode(tok.encode("CAF\u00c9")) == tok.decode(tok.encode("CAFE\u0301")) == "café"
    assert train_bpe(iter(EN), vocab_size=300, normalization=None, lowercase=True).lowercases


def test_wordpiece_marks_continuations_and_round_trips_hashes() -> None:
    # Training text full of "#" makes "##" a learned word-start token; with BERT's "##" as the
    # continuation prefix it would be indistinguishable from the (empty) continuation and vanish.
    hashes = ["## #tag ##tag ### ＃＃x"] * 5
    tok = train_wordpiece(iter(EN + DE + hashes), vocab_size=600)
    assert any(t.startswith(WORDPIECE_PREFIX) for t in tok.tokenize("Antriebsradsystemen"))
    for text in [*hashes, "## #hashtag ###x ＃＃y", "x##y"]:
        assert tok.decode(tok.encode(text)) == text


def test_wordpiece_long_word_becomes_unk() -> None:
    # The documented limit: WordPiece gives up on words over 1000 bytes (BPE does not).
    long_word = "a" * 1001
    assert train_wordpiece(iter(EN), vocab_size=600).encode(long_word, add_eos=False) == [UNK_ID]
    bpe = train_bpe(iter(EN), vocab_size=300)
    assert bpe.decode(bpe.encode(long_word)) == long_word


def test_extra_special_tokens_follow_the_fixed_ones() -> None:
    tok = train_bpe(iter(EN), vocab_size=300, extra_special_tokens=["<mask>", "<sep>"])
    assert [tok.token_to_id(t) for t in [*SPECIAL_TOKENS, "<mask>", "<sep>"]] == list(range(6))
    ids = tok.encode("a man")
    assert tok.decode([4, *ids, 5]) == "a man"
    assert 4 not in tok.encode("a <mask>")  # in text it is text, like the fixed ones


def test_extra_special_tokens_must_be_new() -> None:
    with pytest.raises(ConfigError, match="repeat"):
        train_bpe(iter(EN), vocab_size=300, extra_special_tokens=["<s>"])
    with pytest.raises(ConfigError, match="repeat"):
        train_bpe(iter(EN), vocab_size=300, extra_special_tokens=["<x>", "<x>"])


def test_too_small_vocab_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"vocab_size=100 .* at least 260"):
        train_bpe(iter(EN), vocab_size=100)
    with pytest.raises(ConfigError, match="at least 516"):
        train_wordpiece(iter(EN), vocab_size=400)


def test_unknown_normalization_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'nfc'"):
        train_bpe(iter(EN), vocab_size=300, normalization="nfc")


def test_missing_file_is_named_before_training(files, tmp_path) -> None:
    en, _ = files
    missing = tmp_path / "train.fr.gz"
    with pytest.raises(DataError, match="not found") as info:
        train_bpe([en, missing])
    assert str(missing) in str(info.value)


def test_list_of_sentences_explains_how_to_pass_text() -> None:
    with pytest.raises(DataError, match=r"iter\(sentences\)"):
        train_bpe(EN)  # a list is read as file paths


def test_non_utf8_file_is_a_data_error(tmp_path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Straße\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as info:
        train_bpe(path, vocab_size=300)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_a_data_error(files) -> None:
    _, de = files
    de.write_bytes(de.read_bytes()[:-20])
    with pytest.raises(DataError, match="truncated") as info:
        train_bpe(de, vocab_size=300)
    assert str(de) in str(info.value)
