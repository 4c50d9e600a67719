"""TokenizerPair: shared vs separate vocabularies and their file layout in a model directory."""

import pytest

from aiayn.errors import DataError
from aiayn.tokenizers import (
    SHARED_FILE,
    SOURCE_FILE,
    TARGET_FILE,
    Tokenizer,
    TokenizerPair,
    train_bpe,
)

EN = ["A man in a blue shirt.", "Two men are at the stove.", "A woman is walking."] * 4
DE = ["Ein Mann in einem blauen Hemd.", "Zwei Männer stehen am Herd.", "Eine Frau geht."] * 4


@pytest.fixture(scope="module")
def en() -> Tokenizer:
    return train_bpe(iter(EN), vocab_size=300)


@pytest.fixture(scope="module")
def de() -> Tokenizer:
    return train_bpe(iter(DE), vocab_size=300)


def files_in(path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_shared_pair_saves_one_file_and_loads_shared(en: Tokenizer, tmp_path) -> None:
    pair = TokenizerPair.shared(en)
    assert pair.is_shared and pair.source is pair.target
    assert pair.save(tmp_path / "model") == [tmp_path / "model" / SHARED_FILE]
    assert files_in(tmp_path / "model") == {"tokenizer.json"}
    loaded = TokenizerPair.load(tmp_path / "model")
    assert loaded.is_shared
    assert loaded.source.encode_batch(EN + DE) == en.encode_batch(EN + DE)


def test_separate_pair_saves_two_files_and_loads_each_side(
    en: Tokenizer, de: Tokenizer, tmp_path
) -> None:
    pair = TokenizerPair(en, de)
    assert not pair.is_shared
    pair.save(tmp_path)
    assert files_in(tmp_path) == {"tokenizer.src.json", "tokenizer.tgt.json"}
    loaded = TokenizerPair.load(tmp_path)
    assert not loaded.is_shared
    # Each side is the right tokenizer (the two vocabularies encode differently).
    assert en.encode_batch(DE) != de.encode_batch(DE)
    assert loaded.source.encode_batch(EN + DE) == en.encode_batch(EN + DE)
    assert loaded.target.encode_batch(EN + DE) == de.encode_batch(EN + DE)


def test_equal_but_distinct_tokenizers_are_not_shared(en: Tokenizer, tmp_path) -> None:
    en.save(tmp_path / "a.json")
    copy = Tokenizer.load(tmp_path / "a.json")
    assert not TokenizerPair(en, copy).is_shared


def test_saving_other_layout_removes_stale_files(en: Tokenizer, de: Tokenizer, tmp_path) -> None:
    TokenizerPair(en, de).save(tmp_path)
    TokenizerPair.shared(en).save(tmp_path)
    assert files_in(tmp_path) == {SHARED_FILE}
    TokenizerPair(en, de).save(tmp_path)
    assert files_in(tmp_path) == {SOURCE_FILE, TARGET_FILE}
    assert not TokenizerPair.load(tmp_path).is_shared


def test_load_missing_directory(tmp_path) -> None:
    with pytest.raises(DataError, match="model directory not found") as info:
        TokenizerPair.load(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)


def test_load_empty_directory_names_expected_files(tmp_path) -> None:
    with pytest.raises(DataError, match="no tokenizer in") as info:
        TokenizerPair.load(tmp_path)
    assert all(name in str(info.value) for name in (SHARED_FILE, SOURCE_FILE, TARGET_FILE))


def test_load_half_of_separate_layout_names_missing_file(en: Tokenizer, tmp_path) -> None:
    en.save(tmp_path / SOURCE_FILE)
    with pytest.raises(DataError, match="not found") as info:
        TokenizerPair.load(tmp_path)
    assert str(tmp_path / TARGET_FILE) in str(info.value)


def test_load_both_layouts_is_ambiguous(en: Tokenizer, de: Tokenizer, tmp_path) -> None:
    TokenizerPair(en, de).save(tmp_path)
    en.save(tmp_path / SHARED_FILE)  # e.g. copied in by hand
    with pytest.raises(DataError, match="both"):
        TokenizerPair.load(tmp_path)


def test_load_corrupt_file_names_it(tmp_path) -> None:
    (tmp_path / SHARED_FILE).write_text("{")
    with pytest.raises(DataError, match="corrupt") as info:
        TokenizerPair.load(tmp_path)
    assert str(tmp_path / SHARED_FILE) in str(info.value)
