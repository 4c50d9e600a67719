"""The number-word task: hand-checked spellings, exhaustive invariants, and the splits."""

import re
from collections import Counter

import pytest

from aiayn.data.number_words import (
    ALWAYS_TRAIN_BELOW,
    MAX_NUMBER,
    NumberSplits,
    english,
    german,
    make_splits,
    pairs,
    write_splits,
)
from aiayn.errors import AiaynError, ConfigError

# Checked by hand against standard (Duden) German and American English usage.
CASES = [
    (0, "zero", "null"),
    (1, "one", "eins"),
    (2, "two", "zwei"),
    (3, "three", "drei"),
    (5, "five", "fünf"),
    (6, "six", "sechs"),
    (7, "seven", "sieben"),
    (8, "eight", "acht"),
    (9, "nine", "neun"),
    (10, "ten", "zehn"),
    (11, "eleven", "elf"),
    (12, "twelve", "zwölf"),
    (13, "thirteen", "dreizehn"),
    (14, "fourteen", "vierzehn"),
    (15, "fifteen", "fünfzehn"),
    (16, "sixteen", "sechzehn"),
    (17, "seventeen", "siebzehn"),
    (18, "eighteen", "achtzehn"),
    (19, "nineteen", "neunzehn"),
    (20, "twenty", "zwanzig"),
    (21, "twenty-one", "einundzwanzig"),
    (22, "twenty-two", "zweiundzwanzig"),
    (30, "thirty", "dreißig"),
    (31, "thirty-one", "einunddreißig"),
    (40, "forty", "vierzig"),
    (42, "forty-two", "zweiundvierzig"),
    (50, "fifty", "fünfzig"),
    (56, "fifty-six", "sechsundfünfzig"),
    (60, "sixty", "sechzig"),
    (66, "sixty-six", "sechsundsechzig"),
    (70, "seventy", "siebzig"),
    (77, "seventy-seven", "siebenundsiebzig"),
    (80, "eighty", "achtzig"),
    (88, "eighty-eight", "achtundachtzig"),
    (90, "ninety", "neunzig"),
    (99, "ninety-nine", "neunundneunzig"),
    (100, "one hundred", "einhundert"),
    (101, "one hundred one", "einhunderteins"),
    (110, "one hundred ten", "einhundertzehn"),
    (111, "one hundred eleven", "einhundertelf"),
    (116, "one hundred sixteen", "einhundertsechzehn"),
    (117, "one hundred seventeen", "einhundertsiebzehn"),
    (121, "one hundred twenty-one", "einhunderteinundzwanzig"),
    (200, "two hundred", "zweihundert"),
    (201, "two hundred one", "zweihunderteins"),
    (342, "three hundred forty-two", "dreihundertzweiundvierzig"),
    (600, "six hundred", "sechshundert"),
    (700, "seven hundred", "siebenhundert"),
    (999, "nine hundred ninety-nine", "neunhundertneunundneunzig"),
    (1000, "one thousand", "eintausend"),
    (1001, "one thousand one", "eintausendeins"),
    (1010, "one thousand ten", "eintausendzehn"),
    (1100, "one thousand one hundred", "eintausendeinhundert"),
    (1101, "one thousand one hundred one", "eintausendeinhunderteins"),
    (1999, "one thousand nine hundred ninety-nine", "eintausendneunhundertneunundneunzig"),
    (2000, "two thousand", "zweitausend"),
    (2001, "two thousand one", "zweitausendeins"),
    (10000, "ten thousand", "zehntausend"),
    (11000, "eleven thousand", "elftausend"),
    (12345, "twelve thousand three hundred forty-five", "zwölftausenddreihundertfünfundvierzig"),
    (16000, "sixteen thousand", "sechzehntausend"),
    (17017, "seventeen thousand seventeen", "siebzehntausendsiebzehn"),
    (21000, "twenty-one thousand", "einundzwanzigtausend"),
    (21001, "twenty-one thousand one", "einundzwanzigtausendeins"),
    (21005, "twenty-one thousand five", "einundzwanzigtausendfünf"),
    (31000, "thirty-one thousand", "einunddreißigtausend"),
    (70000, "seventy thousand", "siebzigtausend"),
    (100000, "one hundred thousand", "einhunderttausend"),
    (100001, "one hundred thousand one", "einhunderttausendeins"),
    (101000, "one hundred one thousand", "einhunderteintausend"),
    (
        101101,
        "one hundred one thousand one hundred one",
        "einhunderteintausendeinhunderteins",
    ),
    (200000, "two hundred thousand", "zweihunderttausend"),
    (500005, "five hundred thousand five", "fünfhunderttausendfünf"),
    (
        616161,
        "six hundred sixteen thousand one hundred sixty-one",
        "sechshundertsechzehntausendeinhunderteinundsechzig",
    ),
    (
        777777,
        "seven hundred seventy-seven thousand seven hundred seventy-seven",
        "siebenhundertsiebenundsiebzigtausendsiebenhundertsiebenundsiebzig",
    ),
    (
        999999,
        "nine hundred ninety-nine thousand nine hundred ninety-nine",
        "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
    ),
]


@pytest.mark.parametrize(("n", "en", "de"), CASES, ids=[str(c[0]) for c in CASES])
def test_hand_checked_spellings(n, en, de):
    assert english(n) == en
    assert german(n) == de


def test_pairs_zip_english_and_german():
    assert pairs([342, 1]) == [
        ("three hundred forty-two", "dreihundertzweiundvierzig"),
        ("one", "eins"),
    ]


@pytest.mark.parametrize("bad", [-1, MAX_NUMBER + 1, 10**9])
def test_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match=r"0\.\.999,999"):
        english(bad)
    with pytest.raises(ValueError, match=r"0\.\.999,999"):
        german(bad)


@pytest.mark.parametrize("bad", [1.0, "1", True])
def test_non_integers_are_rejected(bad):
    with pytest.raises(TypeError):
        german(bad)


# --- An independent oracle: parse German number words back to numbers -------------------------
# Written from the rules, not from the implementation's tables, and strict about "ein"/"eins":
# "eins" only ends a number; "ein" only starts a compound.

_DE_UNITS = {"zwei": 2, "drei": 3, "vier": 4, "fünf": 5, "sechs": 6, "sieben": 7, "acht": 8,
             "neun": 9}  # fmt: skip
_DE_TEENS = {"zehn": 10, "elf": 11, "zwölf": 12, "dreizehn": 13, "vierzehn": 14, "fünfzehn": 15,
             "sechzehn": 16, "siebzehn": 17, "achtzehn": 18, "neunzehn": 19}  # fmt: skip
_DE_TENS = {"zwanzig": 20, "dreißig": 30, "vierzig": 40, "fünfzig": 50, "sechzig": 60,
            "siebzig": 70, "achtzig": 80, "neunzig": 90}  # fmt: skip


def _parse_de_below_100(word: str, final: bool) -> int:
    if word == ("eins" if final else "ein"):
        return 1
    table = {**_DE_UNITS, **_DE_TEENS, **_DE_TENS}
    if word in table:
        return table[word]
    units, tens = word.split("und")  # ValueError unless exactly one "und"
    return (1 if units == "ein" else _DE_UNITS[units]) + _DE_TENS[tens]


def _parse_de_below_1000(word: str, final: bool) -> int:
    if "hundert" not in word:
        return _parse_de_below_100(word, final)
    head, rest = word.split("hundert")
    hundreds = 1 if head == "ein" else _DE_UNITS[head]
    return 100 * hundreds + (_parse_de_below_100(rest, final) if rest else 0)


def parse_german(word: str) -> int:
    if word == "null":
        return 0
    if "tausend" not in word:
        return _parse_de_below_1000(word, final=True)
    head, rest = word.split("tausend")
    return 1000 * _parse_de_below_1000(head, final=False) + (
        _parse_de_below_1000(rest, final=True) if rest else 0
    )


def _sample_of_range():
    # Every number below 2,100 (all patterns of small numbers, 1,000–1,099, 2,000–2,099), every
    # x,y01 and x,y21 near thousands, and a spread over the whole range.
    return sorted(
        {*range(2100), *range(0, MAX_NUMBER + 1, 997), *range(1001, MAX_NUMBER, 10_100)}
        | {t * 1000 + r for t in (1, 11, 21, 101, 121, 999) for r in (0, 1, 21, 101, 999)}
    )


def test_german_parses_back_to_the_number():
    for n in _sample_of_range():
        assert parse_german(german(n)) == n, (n, german(n))


def test_oracle_rejects_wrong_ein_forms():
    with pytest.raises((KeyError, ValueError)):
        parse_german("tausendein")  # final 1 must be "eins"
    with pytest.raises((KeyError, ValueError)):
        parse_german("einstausend")  # a 1 inside a compound must be "ein"


def test_every_german_number_has_its_own_spelling():
    # Exhaustive, because German glues its parts together without separators: the task must be
    # a bijection on 0..999,999 for exact match to be well defined.
    assert len({german(n) for n in range(MAX_NUMBER + 1)}) == MAX_NUMBER + 1


_EN_WORDS = {english(n): n for n in range(100)}  # checked by the hand-made cases above


def parse_english(text: str) -> int:
    """Words → number, from the structure "<0..999> thousand <0..999>" (an independent oracle)."""

    def below_1000(words: list[str]) -> int:
        if "hundred" in words:
            i = words.index("hundred")
            assert i == 1 and 1 <= _EN_WORDS[words[0]] <= 9, words
            return 100 * _EN_WORDS[words[0]] + (below_1000(words[2:]) if words[2:] else 0)
        (word,) = words
        return _EN_WORDS[word]

    words = text.split(" ")
    if "thousand" not in words:
        return below_1000(words)
    i = words.index("thousand")
    return 1000 * below_1000(words[:i]) + (below_1000(words[i + 1 :]) if words[i + 1 :] else 0)


def test_english_parses_back_to_the_number():
    for n in _sample_of_range():
        assert parse_english(english(n)) == n, (n, english(n))


def test_spelling_invariants_over_a_sample():
    for n in _sample_of_range():
        de, en = german(n), english(n)
        # German below a million is one lowercase word; English words are lowercase and
        # separated by single spaces, with hyphens only inside 21–99 compounds.
        assert re.fullmatch(r"[a-zäöüß]+", de), de
        assert re.fullmatch(r"[a-z]+(-[a-z]+)?( [a-z]+(-[a-z]+)?)*", en), en
        assert " and " not in f" {en} "
        assert "eins" not in de[:-4], de  # "eins" only at the very end
        assert not de.endswith("ein"), de  # a final 1 is always "eins"


# --- Splits --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splits() -> NumberSplits:
    return make_splits(20_000, 500, 1_000, seed=0)


def test_splits_have_the_requested_sizes_and_are_disjoint(splits):
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (20_000, 500, 1_000)
    train, valid, test = set(splits.train), set(splits.valid), set(splits.test)
    assert len(train) == 20_000 and len(valid) == 500 and len(test) == 1_000  # no duplicates
    assert not train & test
    assert not train & valid
    assert not valid & test
    assert all(0 <= n <= MAX_NUMBER for n in train | valid | test)


def test_small_numbers_are_all_in_training(splits):
    assert set(range(ALWAYS_TRAIN_BELOW)) <= set(splits.train)
    assert min(splits.valid) >= ALWAYS_TRAIN_BELOW
    assert min(splits.test) >= ALWAYS_TRAIN_BELOW


def test_splits_are_stratified_by_digit_count(splits):
    assert Counter(len(str(n)) for n in splits.test) == {3: 250, 4: 250, 5: 250, 6: 250}
    assert Counter(len(str(n)) for n in splits.valid) == {3: 125, 4: 125, 5: 125, 6: 125}
    # Three-digit numbers are scarce (900): training gets what test and valid leave, and the
    # other strata share the rest evenly.
    train = Counter(len(str(n)) for n in splits.train)
    assert train[1] == 10 and train[2] == 90 and train[3] == 900 - 250 - 125
    assert max(train[4], train[5], train[6]) - min(train[4], train[5], train[6]) <= 1


def test_split_order_is_mixed(splits):
    # Any prefix of a split is a fair sample, not one stratum.
    assert len({len(str(n)) for n in splits.test[:40]}) == 4


def test_splits_are_deterministic_and_depend_on_the_seed(splits):
    assert make_splits(20_000, 500, 1_000, seed=0) == splits
    assert make_splits(20_000, 500, 1_000, seed=1).test != splits.test


def test_test_set_does_not_depend_on_the_training_size(splits):
    other = make_splits(5_000, 500, 1_000, seed=0)
    assert set(other.test) == set(splits.test)
    assert set(other.valid) == set(splits.valid)


def test_the_whole_range_can_be_split():
    s = make_splits(900, 100, 99_000, seed=3, max_number=99_999)
    assert sorted(s.train + s.valid + s.test) == list(range(100_000))


def test_pairs_of_a_split(splits):
    n = splits.test[0]
    assert splits.pairs("test")[0] == (english(n), german(n))
    with pytest.raises(ConfigError, match="unknown split"):
        splits.pairs("dev")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": 50, "n_valid": 1, "n_test": 1}, "n_train=50 is smaller than the 100"),
        ({"n_train": 1_000, "n_valid": -1, "n_test": 1}, "n_valid must be >= 0"),
        ({"n_train": 900_000, "n_valid": 90_000, "n_test": 10_001}, "holds only 1,000,000"),
        ({"n_train": 100, "n_valid": 1, "n_test": 1, "max_number": 10**6}, "max_number"),
    ],
)
def test_impossible_requests_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        make_splits(**kwargs)
    assert isinstance(info.value, AiaynError)


def test_write_splits_writes_parallel_files(tmp_path):
    s = make_splits(150, 20, 30, seed=7)
    paths = write_splits(s, tmp_path / "numbers")
    names = [p.name for p in paths]
    assert names == ["train.en", "train.de", "valid.en", "valid.de", "test.en", "test.de"]
    for split in ("train", "valid", "test"):
        en = (tmp_path / "numbers" / f"{split}.en").read_text(encoding="utf-8").splitlines()
        de = (tmp_path / "numbers" / f"{split}.de").read_text(encoding="utf-8").splitlines()
        assert list(zip(en, de, strict=True)) == s.pairs(split)
    # Written atomically: no temporary files are left behind.
    assert sorted(p.name for p in (tmp_path / "numbers").iterdir()) == sorted(names)


def test_write_splits_replaces_existing_files(tmp_path):
    (tmp_path / "test.de").write_text("stale\n", encoding="utf-8")
    s = make_splits(100, 0, 1, seed=0)
    write_splits(s, tmp_path)
    assert (tmp_path / "test.de").read_text(encoding="utf-8") == german(s.test[0]) + "\n"
