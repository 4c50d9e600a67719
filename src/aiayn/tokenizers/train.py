"""Training subword vocabularies: byte-level BPE (the default) and WordPiece.

The paper uses byte-pair encoding with a vocabulary shared by source and target (§5.1: "a shared
source-target vocabulary of about 37000 tokens"). A shared vocabulary is one tokenizer trained on
both languages: `train_bpe(["train.en.gz", "train.de.gz"])`; separate vocabularies are two
tokenizers, one per language (see `TokenizerPair`).

Every tokenizer made here has the same pipeline, chosen so that decoding restores the text exactly:

1. Unicode normalization (NFC by default). Text already in that form is unchanged; other text is
   normalized, so it comes back normalized (e.g. "e" + U+0301 decodes as "é"). With
   `lowercase=True` the text is also lowercased, so it comes back lowercased: the usual
   preprocessing of small corpora scored by lowercased BLEU (Multi30k), where "Ein" and "ein"
   then share their tokens. Off by default: decoding restores the case of the input.
2. Byte-level pre-tokenization (GPT-2's): the text is split into words, digits, punctuation and
   whitespace runs, and every UTF-8 byte is mapped to a printable character. Spaces are kept as
   part of the following token ("Ġ"), so any run of spaces, tabs or newlines survives, and the
   256 byte characters are all in the vocabulary, so no input ever becomes `<unk>`.
3. The subword model (BPE merges or WordPiece longest-match).
4. The byte-level decoder, which maps the characters back to bytes and the bytes to text.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from aiayn.errors import ConfigError, DataError
from aiayn.tokenizers.special_tokens import SPECIAL_TOKENS, UNK
from aiayn.tokenizers.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

Normalization = Literal["NFC", "NFD", "NFKC", "NFKD"]

# What training reads: a path or a list/tuple of paths (plain text or gzip, one sentence per
# line), or any other iterable of strings (a generator, an open file, iter(list_of_sentences)).
TrainingData = str | os.PathLike | Sequence[str | os.PathLike] | Iterable[str]

# Marks a WordPiece token that continues a word. BERT uses "##", but "#" is itself a byte-level
# character, so "##" tokens would be ambiguous ("##" could be a continuation of "" or the text
# "##") and text containing "##" would not survive decoding. The fullwidth number sign (U+FF03)
# looks the same and can never occur inside a byte-level token.
WORDPIECE_PREFIX = "＃＃"

# WordPiece's greedy longest match costs O(n³) in the length of a word, so very long "words"
# (a 10 kB run of letters without spaces) would stall encoding. Longer words become <unk>, which
# is the one case where WordPiece (not BPE) does not round-trip. BERT uses 100.
WORDPIECE_MAX_WORD_BYTES = 1000

_NORMALIZERS = {"NFC": normalizers.NFC, "NFD": normalizers.NFD, "NFKC": normalizers.NFKC}
_NORMALIZERS["NFKD"] = normalizers.NFKD

_BYTE_ALPHABET: list[str] = sorted(pre_tokenizers.ByteLevel.alphabet())  # the 256 byte characters


def train_bpe(
    data: TrainingData,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    *,
    normalization: Normalization | None = "NFC",
    lowercase: bool = False,
    extra_special_tokens: Sequence[str] = (),
    show_progress: bool = False,
) -> Tokenizer:
    """Train a byte-level BPE tokenizer (the paper's subword model, §5.1).

    Args:
        data: a file path, a list/tuple of file paths (plain or .gz, UTF-8, one sentence per
            line), or any other iterable of sentences, e.g. `iter(lines)` or a generator. Give the
            files of both languages for a shared vocabulary.
        vocab_size: size of the final vocabulary, special tokens and the 256 byte characters
            included; training stops earlier when no pair occurs `min_frequency` times.
        min_frequency: minimum number of occurrences of a pair to be merged.
        normalization: Unicode normalization applied before tokenization ("NFC", "NFD", "NFKC",
            "NFKD" or None). Only text already in this form decodes back unchanged.
        lowercase: lowercase all text (after `normalization`) when training and encoding, so
            the tokenizer, and a model trained with it, only ever sees and writes lowercase.
        extra_special_tokens: more special tokens (e.g. "<mask>" for masked-LM pre-training),
            given ids 4, 5, ... in order; like `<pad>` they are dropped by `decode`.
        show_progress: draw the `tokenizers` progress bars on stderr.

    Returns:
        The trained `Tokenizer`. Training is deterministic: the same data and arguments give the
        same vocabulary.

    Raises:
        ConfigError: if `vocab_size` is below the 260 entries every byte-level vocabulary needs.
        DataError: if a file is missing or is not UTF-8 text.
    """
    specials = _special_tokens(extra_special_tokens)
    _check_vocab_size(vocab_size, len(specials) + len(_BYTE_ALPHABET), "BPE")
    backend = _new_backend(models.BPE(unk_token=UNK), normalization, lowercase)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,  # first, so that they get ids 0, 1, 2, ...
        initial_alphabet=_BYTE_ALPHABET,  # all 256 bytes, seen in training or not: no <unk>
        show_progress=show_progress,
    )
    return _train(backend, trainer, data, vocab_size)


def train_wordpiece(
    data: TrainingData,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    *,
    normalization: Normalization | None = "NFC",
    lowercase: bool = False,
    extra_special_tokens: Sequence[str] = (),
    show_progress: bool = False,
) -> Tokenizer:
    """Train a byte-level WordPiece tokenizer (BERT's subword model); arguments as `train_bpe`.

    Tokens that continue a word start with `WORDPIECE_PREFIX` ("＃＃"). The vocabulary always
    holds every byte both as a word start and as a continuation, so no input becomes `<unk>`
    except words longer than `WORDPIECE_MAX_WORD_BYTES` bytes.

    Unlike BPE, WordPiece training in `tokenizers` is not bit-reproducible: ties between equally
    frequent pairs are broken in hash order, so two runs can differ in a few rare tokens.

    Raises:
        ConfigError: if `vocab_size` is below the 516 entries (special tokens, 256 bytes at word
            start, 256 continuing a word) every byte-level WordPiece vocabulary needs.
        DataError: if a file is missing or is not UTF-8 text.
    """
    specials = _special_tokens(extra_special_tokens)
    _check_vocab_size(vocab_size, len(specials) + 2 * len(_BYTE_ALPHABET), "WordPiece")
    model = models.WordPiece(
        unk_token=UNK,
        continuing_subword_prefix=WORDPIECE_PREFIX,
        max_input_chars_per_word=WORDPIECE_MAX_WORD_BYTES,
    )
    backend = _new_backend(model, normalization, lowercase)
    # Strip the continuation prefix, then turn byte characters back into text. The stock
    # WordPiece decoder would instead insert a space before every word-initial token, but with
    # byte-level tokens the spaces are already inside the tokens ("Ġ").
    backend.decoder = decoders.Sequence(
        [decoders.Replace(WORDPIECE_PREFIX, ""), decoders.ByteLevel()]
    )
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=_BYTE_ALPHABET,
        continuing_subword_prefix=WORDPIECE_PREFIX,
        show_progress=show_progress,
    )
    tokenizer = _train(backend, trainer, data, vocab_size)
    _add_continuation_bytes(tokenizer.backend, vocab_size)
    return tokenizer


def _new_backend(
    model: models.Model, normalization: Normalization | None, lowercase: bool
) -> _Backend:
    """An untrained `tokenizers.Tokenizer` with the normalization and byte-level pipeline."""
    backend = _Backend(model)
    steps: list[normalizers.Normalizer] = []
    if normalization is not None:
        if normalization not in _NORMALIZERS:
            raise ConfigError(
                f"unknown normalization {normalization!r}; use one of "
                f"{', '.join(_NORMALIZERS)} or None"
            )
        steps.append(_NORMALIZERS[normalization]())
    if lowercase:  # after Unicode normalization, so that composed and decomposed forms agree
        steps.append(normalizers.Lowercase())
    if steps:
        backend.normalizer = steps[0] if len(steps) == 1 else normalizers.Sequence(steps)
    # add_prefix_space=False: a space added in front of the text would come back when decoding.
    # The price is that the first word of a sentence has its own tokens ("Ein" vs "ĠEin").
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    return backend


def _train(
    backend: _Backend, trainer: trainers.Trainer, data: TrainingData, vocab_size: int
) -> Tokenizer:
    """Run `trainer` over `data` and wrap the result."""
    lines, description = _training_lines(data)
    start = time.perf_counter()
    backend.train_from_iterator(lines, trainer=trainer)
    logger.info(
        "trained %s vocabulary of %d tokens (asked for %d) on %s in %.1f s",
        type(backend.model).__name__,
        backend.get_vocab_size(with_added_tokens=True),
        vocab_size,
        description,
        time.perf_counter() - start,
    )
    return Tokenizer(backend)


def _training_lines(data: TrainingData) -> tuple[Iterator[str], str]:
    """The sentences to train on, and a description of where they come from for the log."""
    if isinstance(data, (str, os.PathLike)):
        paths = [Path(data)]
    elif isinstance(data, (list, tuple)):
        paths = [Path(p) for p in data]
    else:
        # Lines read from an open file still carry their newline; drop it as _read_lines does.
        return (line.rstrip("\n") for line in data), "an iterable of sentences"
    for path in paths:  # fail before training starts, not halfway through the files
        if not path.is_file():
            raise DataError(
                f"training file not found: {path}; a path or list/tuple is read as file paths "
                "(to train on sentences in memory, pass an iterator such as iter(sentences))"
            )
    lines = (line for path in paths for line in _read_lines(path))
    return lines, ", ".join(str(p) for p in paths)


def _read_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 text file, gzip-compressed or not, without line terminators."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"  # gzip magic number; more reliable than ".gz"
    opener = gzip.open if compressed else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            for line in f:
                yield line.rstrip("\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(f"cannot read {path}: {e}; is the file truncated?") from e


def _special_tokens(extra: Sequence[str]) -> list[str]:
    """The fixed special tokens followed by the caller's extra ones."""
    if isinstance(extra, str):  # a common slip: extra_special_tokens="<mask>"
        extra = [extra]
    duplicates = [t for t in extra if t in SPECIAL_TOKENS]
    if duplicates or len(set(extra)) != len(extra):
        raise ConfigError(
            f"extra_special_tokens {list(extra)} repeat a token; {', '.join(SPECIAL_TOKENS)} "
            "are always present"
        )
    return [*SPECIAL_TOKENS, *extra]


def _check_vocab_size(vocab_size: int, minimum: int, kind: str) -> None:
    """Refuse a vocabulary too small to hold the special tokens and the byte alphabet."""
    if vocab_size < minimum:
        raise ConfigError(
            f"vocab_size={vocab_size} is too small: a byte-level {kind} vocabulary with these "
            f"special tokens needs at least {minimum} entries"
        )


def _add_continuation_bytes(backend: _Backend, vocab_size: int) -> None:
    """Make every byte available as a word-continuing WordPiece token, within `vocab_size`.

    The trainer only creates "＃＃x" for bytes it saw inside a word, and WordPiece turns a whole
    word into `<unk>` when one piece is missing (e.g. a letter with an accent that training text
    only had at word start). Adding the missing ones keeps every input encodable; to stay within
    `vocab_size`, the most recently learned tokens (the least frequent merges) give up their place.
    """
    vocab = backend.get_vocab(with_added_tokens=True)  # {token: id}
    by_id = sorted(vocab, key=vocab.__getitem__)
    missing = [WORDPIECE_PREFIX + c for c in _BYTE_ALPHABET if WORDPIECE_PREFIX + c not in vocab]
    if not missing:
        return
    n_drop = max(0, len(by_id) + len(missing) - vocab_size)
    fixed = set(SPECIAL_TOKENS) | set(_BYTE_ALPHABET)

    def learned(token: str) -> bool:  # a merge result, not a special token or a single byte
        return token not in fixed and len(token.removeprefix(WORDPIECE_PREFIX)) > 1

    learned_by_id = [t for t in by_id if learned(t)]
    dropped = set(learned_by_id[len(learned_by_id) - n_drop :]) if n_drop else set()
    kept = [t for t in by_id if t not in dropped]
    new_vocab = {t: i for i, t in enumerate([*kept, *missing])}
    backend.model = models.WordPiece(
        new_vocab,
        unk_token=UNK,
        continuing_subword_prefix=WORDPIECE_PREFIX,
        max_input_chars_per_word=WORDPIECE_MAX_WORD_BYTES,
    )
    logger.debug("added %d continuation bytes, dropped %d learned tokens", len(missing), n_drop)
