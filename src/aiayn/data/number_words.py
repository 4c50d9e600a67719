"""The embedded demo task: English number words → German number words, 0–999,999.

    342 → "three hundred forty-two" → "dreihundertzweiundvierzig"

A translation task that needs no download, has one correct answer per input, and still exercises
what makes translation hard for a sequence model: reordering (German says the units before the
tens, "zweiundvierzig" = two-and-forty), agreement-like context ("ein" vs "eins"), irregular forms
(elf, zwölf, sechzehn, siebzehn, dreißig) and a length mismatch (English is spaced, German is one
word). A small character-level Transformer learns it on a CPU in minutes.

Conventions (each one chosen so that every number has exactly one spelling):

English — American style, no "and", hyphenated compounds 21–99, thousands never folded into
hundreds: 101 = "one hundred one", 1,100 = "one thousand one hundred" (not "eleven hundred"),
21,005 = "twenty-one thousand five", 0 = "zero".

German — standard (Duden) orthography: a number below one million is one word. Choices:

- hundreds and thousands always carry an explicit "ein": 100 = "einhundert", 1,000 =
  "eintausend", 1,001 = "eintausendeins" (not the equally correct "hundert", "tausend",
  "tausendeins"), so that every digit is spelled out and the mapping is regular;
- a 1 that ends the number is "eins" (1 = "eins", 101 = "einhunderteins", 1,001 =
  "eintausendeins"); a 1 that is followed by more of the word is "ein" ("einundzwanzig",
  "eintausend", 31,000 = "einunddreißigtausend", 101,000 = "einhunderteintausend");
- no "und" after hundreds or thousands: 101 = "einhunderteins", not "hundertundeins";
- "ß" as in Germany and Austria (30 = "dreißig"; Swiss spelling would be "dreissig"), umlauts
  as Unicode characters (NFC): "zwölf", "fünf".

The splits (`make_splits`) hold out whole numbers: a test number never appears in training, so
exact match on the test set measures whether the model learned the rules rather than the pairs.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text

logger = logging.getLogger(__name__)

MAX_NUMBER = 999_999
"""The largest number the task covers (German writes larger numbers as several words)."""

SPLIT_NAMES = ("train", "valid", "test")
"""Split names, in the order `write_splits` writes them; also the file stems (`train.en`)."""

ALWAYS_TRAIN_BELOW = 100
"""Numbers below this go to training only (see `make_splits`)."""

# --- English -------------------------------------------------------------------------------------

_EN_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _check_range(n: int) -> None:
    """Reject anything that is not an int in 0..MAX_NUMBER (bool is an int, but not a number)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"expected an int, got {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number words cover 0..{MAX_NUMBER:,}, got {n:,}")


def _english_below_100(n: int) -> str:
    """1..99 → "one" .. "ninety-nine" (compounds hyphenated)."""
    if n < 20:
        return _EN_ONES[n]
    tens, ones = divmod(n, 10)
    return _EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else "")


def _english_below_1000(n: int) -> str:
    """1..999 → words; "one hundred one" (American, no "and")."""
    hundreds, rest = divmod(n, 100)
    words = []
    if hundreds:
        words.append(f"{_EN_ONES[hundreds]} hundred")
    if rest:
        words.append(_english_below_100(rest))
    return " ".join(words)


def english(n: int) -> str:
    """Spell `n` (0..999,999) in American English: 342 → "three hundred forty-two".

    Raises:
        TypeError: `n` is not an int.
        ValueError: `n` is outside 0..999,999.
    """
    _check_range(n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    words = []
    if thousands:
        words.append(f"{_english_below_1000(thousands)} thousand")
    if rest:
        words.append(_english_below_1000(rest))
    return " ".join(words)


# --- German --------------------------------------------------------------------------------------

_DE_ONES = (
    "null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
    "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn",
    "achtzehn", "neunzehn",
)  # fmt: skip
# sechzig and siebzig drop letters of sechs and sieben, like sechzehn and siebzehn above.
_DE_TENS = ("", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig",
            "neunzig")  # fmt: skip


def _german_digit(d: int) -> str:
    """A digit 1..9 as the first part of a compound: "ein" for 1 (einhundert), else as counted."""
    return "ein" if d == 1 else _DE_ONES[d]


def _german_below_100(n: int, *, final: bool) -> str:
    """1..99 → one word, units before tens ("zweiundvierzig").

    `final` says whether the word ends the number: a final 1 is "eins", a 1 inside a compound
    ("einundzwanzig", "eintausend") is "ein".
    """
    if n == 1:
        return "eins" if final else "ein"
    if n < 20:
        return _DE_ONES[n]
    tens, ones = divmod(n, 10)
    if ones == 0:
        return _DE_TENS[tens]
    # Units first, joined by "und": the reordering a model must learn ("two-and-forty").
    return f"{_german_digit(ones)}und{_DE_TENS[tens]}"


def _german_below_1000(n: int, *, final: bool) -> str:
    """1..999 → one word: "einhundert", "dreihundertzweiundvierzig" (no "und" after hundert)."""
    hundreds, rest = divmod(n, 100)
    word = f"{_german_digit(hundreds)}hundert" if hundreds else ""
    if rest:
        word += _german_below_100(rest, final=final)
    return word


def german(n: int) -> str:
    """Spell `n` (0..999,999) in German, as one word: 342 → "dreihundertzweiundvierzig".

    Hundreds and thousands carry an explicit "ein" ("eintausendeins"); see the module docstring.

    Raises:
        TypeError: `n` is not an int.
        ValueError: `n` is outside 0..999,999.
    """
    _check_range(n)
    if n == 0:
        return "null"
    thousands, rest = divmod(n, 1000)
    # The thousands count is never final: "tausend" follows it, so 1 → "ein", 101 → "einhundertein".
    word = f"{_german_below_1000(thousands, final=False)}tausend" if thousands else ""
    if rest:
        word += _german_below_1000(rest, final=True)
    return word


def pairs(numbers: Iterable[int]) -> list[tuple[str, str]]:
    """The parallel sentence pairs (English, German) for `numbers`, in order."""
    return [(english(n), german(n)) for n in numbers]


# --- Splits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberSplits:
    """Disjoint train/valid/test sets of numbers, each in a seeded random order.

    Build with `make_splits`; `pairs("test")` gives the (English, German) sentences.
    """

    train: tuple[int, ...]
    valid: tuple[int, ...]
    test: tuple[int, ...]

    def numbers(self, split: str) -> tuple[int, ...]:
        """The numbers of one split ("train", "valid" or "test")."""
        if split not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, split)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """The (English, German) sentence pairs of one split, in the split's order."""
        return pairs(self.numbers(split))


@dataclass(frozen=True)
class _Stratum:
    """The numbers lo..hi-1 that share a digit count, sampled as one group."""

    digits: int
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo


def _strata(lo: int, max_number: int) -> list[_Stratum]:
    """lo..max_number cut at powers of ten: [100, 1000), [1000, 10000), … (last one truncated)."""
    strata = []
    digits = len(str(lo))
    while lo <= max_number:
        hi = min(10**digits, max_number + 1)
        strata.append(_Stratum(digits, lo, hi))
        lo, digits = hi, digits + 1
    return strata


def _allocate(quota: int, capacities: Sequence[int]) -> list[int]:
    """Split `quota` as evenly as possible over groups, none above its capacity ("water filling").

    Small groups that cannot take an equal share give all they have; the rest is shared evenly
    among the larger groups. Requires sum(capacities) >= quota.
    """
    order = sorted(range(len(capacities)), key=lambda i: capacities[i])
    counts = [0] * len(capacities)
    remaining = quota
    for rank, i in enumerate(order):
        counts[i] = min(capacities[i], remaining // (len(order) - rank))
        remaining -= counts[i]
    # Floor division hands the leftovers to later (larger) groups, so nothing is left over.
    assert remaining == 0, (quota, capacities)
    return counts


def _shuffled_prefix(rng: random.Random, lo: int, hi: int, k: int) -> list[int]:
    """The first `k` numbers of a seeded Fisher–Yates shuffle of range(lo, hi), in O(k) memory.

    A prefix of one fixed permutation, so the first m numbers do not depend on k: the test set
    (taken first) stays the same when the training set grows.
    """
    swapped: dict[int, int] = {}  # sparse view of the permuted array: position → value
    out = []
    n = hi - lo
    for i in range(k):
        j = rng.randrange(i, n)
        out.append(lo + swapped.get(j, j))
        swapped[j] = swapped.get(i, i)
    return out


def make_splits(
    n_train: int,
    n_valid: int,
    n_test: int,
    seed: int = 0,
    max_number: int = MAX_NUMBER,
    always_train_below: int = ALWAYS_TRAIN_BELOW,
) -> NumberSplits:
    """Sample disjoint train/valid/test sets of numbers in 0..max_number, stratified by digits.

    Why stratified: uniform sampling of 0..999,999 gives 90% six-digit numbers, 0.01% below 100,
    and so a model that never sees "elf" alone or "einhunderteins". Instead:

    - every number below `always_train_below` (default 100: the irregular words "eins", "elf",
      "sechzehn", "dreißig", … and the units-before-tens pattern) goes to training; there is too
      little of it to hold out, and a model cannot be expected to invent an irregular word;
    - the rest is cut into strata by digit count (3, 4, 5, 6 digits) and each split's quota is
      shared evenly among the strata, capped by what a stratum holds (the 3-digit stratum has only
      900 numbers; what it cannot supply goes to the larger strata). So each split, test
      included, weighs every number length alike and reports accuracy across all patterns.

    Sampling is deterministic given `seed`; test is drawn first, then valid, then train, each as
    a prefix of one seeded permutation per stratum, so the test set depends only on `seed`,
    `n_test` and the range (not on `n_train`), and the splits never overlap.

    Args:
        n_train: numbers in the training split, including all numbers below `always_train_below`.
        n_valid: numbers in the validation split (all >= `always_train_below`).
        n_test: numbers in the test split (all >= `always_train_below`).
        seed: seed of the sampling.
        max_number: the largest number sampled (at most 999,999).
        always_train_below: numbers below this are in training and never held out.

    Raises:
        ConfigError: a size is negative, the range is invalid, or more numbers are asked for than
            the range holds.
    """
    _check_split_request(n_train, n_valid, n_test, max_number, always_train_below)
    lexicon = list(range(min(always_train_below, max_number + 1)))
    strata = _strata(len(lexicon), max_number)
    free = [s.size for s in strata]

    # Allocate test first so that its composition depends only on n_test (see docstring).
    allocations = {}
    for split, quota in (("test", n_test), ("valid", n_valid), ("train", n_train - len(lexicon))):
        allocations[split] = _allocate(quota, free)
        free = [f - a for f, a in zip(free, allocations[split], strict=True)]

    chosen: dict[str, list[int]] = {"train": list(lexicon), "valid": [], "test": []}
    for index, stratum in enumerate(strata):
        counts = [allocations[split][index] for split in ("test", "valid", "train")]
        # random.Random hashes a string seed (SHA-512): an independent stream per stratum.
        rng = random.Random(f"aiayn.number_words:{seed}:{stratum.digits}")
        drawn = _shuffled_prefix(rng, stratum.lo, stratum.hi, sum(counts))
        chosen["test"] += drawn[: counts[0]]
        chosen["valid"] += drawn[counts[0] : counts[0] + counts[1]]
        chosen["train"] += drawn[counts[0] + counts[1] :]

    # Mix the strata (and the lexicon) so that any prefix of a split is a fair sample of it.
    order_rng = random.Random(f"aiayn.number_words:{seed}:order")
    for numbers in chosen.values():
        order_rng.shuffle(numbers)
    splits = NumberSplits(**{name: tuple(chosen[name]) for name in SPLIT_NAMES})
    logger.debug("number-word splits: %s", {name: len(chosen[name]) for name in SPLIT_NAMES})
    return splits


def _check_split_request(
    n_train: int, n_valid: int, n_test: int, max_number: int, always_train_below: int
) -> None:
    """Raise ConfigError, naming the argument, if `make_splits` cannot satisfy the request."""
    if not 0 <= max_number <= MAX_NUMBER:
        raise ConfigError(f"max_number must be in 0..{MAX_NUMBER:,}, got {max_number:,}")
    if always_train_below < 0:
        raise ConfigError(f"always_train_below must be >= 0, got {always_train_below}")
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
    n_lexicon = min(always_train_below, max_number + 1)
    if n_train < n_lexicon:
        raise ConfigError(
            f"n_train={n_train:,} is smaller than the {n_lexicon} numbers below "
            f"always_train_below={always_train_below} that always go to training; raise n_train "
            "or lower always_train_below"
        )
    available = max_number + 1 - n_lexicon
    asked = n_train - n_lexicon + n_valid + n_test
    if asked > available:
        raise ConfigError(
            f"asked for {n_train + n_valid + n_test:,} distinct numbers (train {n_train:,}, "
            f"valid {n_valid:,}, test {n_test:,}) but 0..{max_number:,} holds only "
            f"{max_number + 1:,}; lower the split sizes or raise max_number"
        )


# --- Files ---------------------------------------------------------------------------------------


def write_splits(splits: NumberSplits, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the splits as parallel text files `{train,valid,test}.{en,de}`, one sentence a line.

    Line i of `train.en` translates to line i of `train.de`. Each file is written to a temporary
    file in `out_dir` and renamed into place, so a reader never sees a half-written file.

    Returns:
        The paths written, in the order train.en, train.de, valid.en, … .
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLIT_NAMES:
        sentence_pairs = splits.pairs(split)
        for lang, column in (("en", 0), ("de", 1)):
            path = out / f"{split}.{lang}"
            atomic_write_text(path, "".join(p[column] + "\n" for p in sentence_pairs))
            written.append(path)
    logger.info("wrote number-word splits to %s", out)
    return written
