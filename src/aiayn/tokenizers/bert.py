"""`BertTokenizer`: BERT's WordPiece tokenizer (Devlin et al. 2019, §3), on HF `tokenizers`.

The pipeline is BERT's own, so that a vocabulary trained here and any HF BERT `tokenizer.json`
(e.g. bert-base-uncased's) behave the same way:

1. `BertNormalizer`: drop control characters, map whitespace to spaces, put spaces around CJK
   characters, and for uncased models lowercase and strip accents ("Café" → "cafe").
2. `BertPreTokenizer`: split on whitespace and around every punctuation character.
3. WordPiece greedy longest match; a piece continuing a word starts with "##" ("playing" →
   "play", "##ing"). A word with no match (or over 100 characters) becomes [UNK].
4. `TemplateProcessing`: "[CLS] A [SEP]" for one text, "[CLS] A [SEP] B [SEP]" for a pair, with
   segment (token type) ids 0 for "[CLS] A [SEP]" and 1 for "B [SEP]" (§3, Fig. 2).
5. The WordPiece decoder: join "##" pieces to their word and tidy spaces before punctuation.

Special tokens are looked up by their strings, not fixed ids: a vocabulary trained here has
[PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, while bert-base-uncased has [PAD] 0 and
[UNK] 100 .. [MASK] 103. Special-token strings in user text are ordinary text ("[SEP]" in a
sentence is "[", "sep", "]"), as in the package's other tokenizers, so no input can forge a
segment boundary or a mask.

Example::

    tok = train_bert_tokenizer(["wiki.txt.gz"], vocab_size=8000)
    enc = tok.encode("The cat sat.", "It purred.", max_len=128)
    enc.ids       # [2, ..., 3, ..., 3]   [CLS] the cat sat . [SEP] it pu ##rred . [SEP]
    enc.segments  # [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    enc.words     # [None, 0, 1, 2, 3, None, 4, 5, 5, 6, None]  ("pu ##rred" is one word)
    tok.save("runs/bert")                   # runs/bert/tokenizer.json
    tok = load_bert_tokenizer("runs/bert")
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from aiayn.errors import ConfigError, DataError
from aiayn.io import atomic_write_text
from aiayn.tokenizers.text_files import Sources, iter_text_chunks, source_paths
from aiayn.tokenizers.tokenizer import _one_line

logger = logging.getLogger(__name__)

FILE_NAME = "tokenizer.json"

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
# In id order for a vocabulary trained here; [PAD] first so that id 0 is padding, as
# EncoderOnlyConfig.pad_id assumes.
BERT_SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK)

CONTINUATION_PREFIX = "##"
MAX_WORD_CHARS = 100  # BERT's: a longer "word" is [UNK] (WordPiece matching is O(n²) per word)


@dataclass(frozen=True)
class BertEncoding:
    """One encoded input: "[CLS] A [SEP]" or "[CLS] A [SEP] B [SEP]", all lists of one length.

    Attributes:
        ids: token ids.
        segments: segment (token type) id of each token: 0 for "[CLS] A [SEP]", 1 for "B [SEP]".
        words: index of the word each token belongs to, None for [CLS]/[SEP]. The pieces of one
            word share an index (whole-word masking masks them together); the words of B are
            numbered after those of A, so indices never repeat across the two texts.
    """

    ids: list[int]
    segments: list[int]
    words: list[int | None]

    def __len__(self) -> int:
        return len(self.ids)


class BertTokenizer:
    """Encode text (or a pair of texts) for BERT, and decode ids back to text.

    Build one with `train_bert_tokenizer`, or load one with `load_bert_tokenizer(directory)` /
    `BertTokenizer.from_file(path)` (any HF BERT `tokenizer.json` works).

    Args:
        backend: a `tokenizers.Tokenizer` whose vocabulary holds [PAD], [UNK], [CLS], [SEP] and
            [MASK]. It is used as is (not copied): its post-processor is set to BERT's template,
            its padding and truncation are turned off (this class truncates per call), and its
            `encode_special_tokens` switch is turned on so special strings in text stay text.

    Raises:
        ValueError: if a special token is missing from the vocabulary.
    """

    def __init__(self, backend: tokenizers.Tokenizer) -> None:
        missing = [t for t in BERT_SPECIAL_TOKENS if backend.token_to_id(t) is None]
        if missing:
            raise ValueError(
                f"not a BERT tokenizer: no {', '.join(missing)} in its vocabulary "
                f"(BERT needs {' '.join(BERT_SPECIAL_TOKENS)})"
            )
        self._pad_id, self._unk_id, self._cls_id, self._sep_id, self._mask_id = (
            backend.token_to_id(t) for t in BERT_SPECIAL_TOKENS
        )
        # Marked special (as a vocab.txt-built file may not have them), so that decode drops them.
        special = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
        unmarked = [t for t in BERT_SPECIAL_TOKENS if t not in special]
        if unmarked:
            backend.add_special_tokens(unmarked)  # they keep their vocabulary ids
        # Set, not trusted from the file: whatever template a loaded file has (BertProcessing
        # in older files, none at all), encode() frames inputs the way BERT was trained.
        backend.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}",
            pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, self._cls_id), (SEP, self._sep_id)],
        )
        if backend.decoder is None:  # a hand-built backend: join "##" pieces when decoding
            backend.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX, cleanup=True)
        # Some published files pad or truncate to 512 by default; ids here are never padded
        # (collation pads), and truncation is per call (`max_len`).
        backend.no_padding()
        backend.no_truncation()
        backend.encode_special_tokens = True
        self._backend = backend

    # ------------------------------------------------------------------ ids of special tokens
    @property
    def pad_id(self) -> int:
        """Id of [PAD] (0 for a vocabulary trained here and for HF's BERT models)."""
        return self._pad_id

    @property
    def unk_id(self) -> int:
        """Id of [UNK], what a word with no WordPiece match becomes."""
        return self._unk_id

    @property
    def cls_id(self) -> int:
        """Id of [CLS], the first token; its final state feeds the classifier (§3)."""
        return self._cls_id

    @property
    def sep_id(self) -> int:
        """Id of [SEP], which ends each text of the input."""
        return self._sep_id

    @property
    def mask_id(self) -> int:
        """Id of [MASK], what masked-LM pre-training puts in place of 80% of chosen tokens."""
        return self._mask_id

    @property
    def special_ids(self) -> frozenset[int]:
        """The ids of [PAD], [UNK], [CLS], [SEP], [MASK]; masking never chooses these."""
        return frozenset((self._pad_id, self._unk_id, self._cls_id, self._sep_id, self._mask_id))

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included; valid ids are `0 .. vocab_size - 1`."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The underlying `tokenizers.Tokenizer`, for anything this wrapper does not expose."""
        return self._backend

    # ----------------------------------------------------------------------------- encoding
    def encode(
        self, text: str, pair: str | None = None, max_len: int | None = None
    ) -> BertEncoding:
        """Encode one text, or a pair, framed by [CLS] and [SEP].

        With `max_len`, the result has at most `max_len` tokens, specials included: tokens are
        removed from the end of the longer text, one at a time, until it fits ("longest first",
        as BERT's `truncate_seq_pair`), so a short text is kept whole and [CLS]/[SEP] always stay.

        Raises:
            ConfigError: `max_len` leaves no room for the special tokens.
        """
        self._check_max_len(max_len, pair is not None)
        with self._truncation(max_len):
            encoding = self._backend.encode(text, pair)
        return _bert_encoding(encoding)

    def encode_batch(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        max_len: int | None = None,
    ) -> list[BertEncoding]:
        """Encode many texts (or pairs: `texts[i]` with `pairs[i]`) in parallel in Rust; each
        result is the same as `encode`'s."""
        texts = list(texts)
        if pairs is not None:
            pairs = list(pairs)
            if len(pairs) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs; give one per text")
        self._check_max_len(max_len, pairs is not None)
        inputs: list[Any] = texts if pairs is None else list(zip(texts, pairs, strict=True))
        # Not encode_batch_fast: it skips the offsets, and with them the word indices.
        with self._truncation(max_len):
            encodings = self._backend.encode_batch(inputs)
        return [_bert_encoding(e) for e in encodings]

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece strings of `text` (no [CLS]/[SEP]), for inspection."""
        return self._backend.encode(text, add_special_tokens=False).tokens

    def _check_max_len(self, max_len: int | None, is_pair: bool) -> None:
        specials = 3 if is_pair else 2
        if max_len is not None and (isinstance(max_len, bool) or max_len < specials):
            # tokenizers silently skips truncation below this; refuse instead.
            raise ConfigError(
                f"max_len={max_len} leaves no room for the {specials} special tokens of "
                f"{'a pair' if is_pair else 'a text'} ([CLS] and [SEP]); use a larger max_len"
            )

    @contextmanager
    def _truncation(self, max_len: int | None) -> Iterator[None]:
        """Longest-first truncation to `max_len` for one call, off again after, so that the
        backend (and so `fingerprint`) holds no per-call state."""
        if max_len is not None:
            # max_len counts the specials; the library subtracts them itself (from the
            # post-processor's template) before it shortens the texts.
            self._backend.enable_truncation(max_len, strategy="longest_first")
        try:
            yield
        finally:
            self._backend.no_truncation()

    # ----------------------------------------------------------------------------- decoding
    def decode(self, ids: Sequence[int] | Any, skip_special: bool = True) -> str:
        """Text of ids (a list, or a 1-D tensor/array); uncased models give lowercase text.

        With `skip_special` (default) [PAD], [CLS], [SEP], [MASK] and [UNK] are dropped;
        otherwise they appear as their strings. Ids outside the vocabulary are ignored.
        """
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return self._backend.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    # ------------------------------------------------------------------------- vocabulary
    def token_to_id(self, token: str) -> int | None:
        """Id of a vocabulary entry (e.g. "play", "##ing", "[MASK]"), or None."""
        return self._backend.token_to_id(token)

    def id_to_token(self, id: int) -> str | None:
        """Vocabulary entry of an id, or None if the id is out of range."""
        return self._backend.id_to_token(id)

    # ---------------------------------------------------------------------- saving/loading
    def fingerprint(self) -> str:
        """SHA-256 of the serialized tokenizer: equal fingerprints encode texts the same way."""
        return hashlib.sha256(self._backend.to_str().encode("utf-8")).hexdigest()

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `directory/tokenizer.json` (HF's format) atomically; its path."""
        path = Path(directory) / FILE_NAME
        atomic_write_text(path, self._backend.to_str(pretty=True))
        logger.debug("saved BERT tokenizer to %s", path)
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> BertTokenizer:
        """Load a BERT `tokenizer.json`: one saved here, or any HF BERT model's.

        Raises:
            DataError: the file is missing, a directory, not a tokenizer, or lacks a BERT
                special token; the message names the file.
        """
        path = Path(path)
        if path.is_dir():
            raise DataError(
                f"{path} is a directory, not a tokenizer file; use load_bert_tokenizer for a "
                "model directory"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(
                f"{path}: no such tokenizer file; check the path or train one with "
                "aiayn.tokenizers.train_bert_tokenizer"
            ) from None
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); is it a tokenizer.json?"
            ) from None
        except OSError as e:
            raise DataError(
                f"{path}: cannot read ({e.strerror or e}); check its permissions"
            ) from e
        try:
            backend = tokenizers.Tokenizer.from_str(text)
        except Exception as e:  # the Rust side raises a bare Exception for any parse error
            raise DataError(
                f"{path}: corrupt tokenizer file ({_one_line(e)}); restore it or train a new one"
            ) from e
        try:
            return cls(backend)
        except ValueError as e:
            raise DataError(f"{path}: {e}") from e

    # ------------------------------------------------------------------------------ python
    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickling (e.g. to DataLoader workers) round-trips the backend through JSON, which
        # drops the encode_special_tokens switch; turn it back on.
        self.__dict__.update(state)
        self._backend.encode_special_tokens = True

    def __repr__(self) -> str:
        normalizer = self._backend.normalizer
        lowercase = normalizer is not None and normalizer.normalize_str("A") == "a"
        return f"BertTokenizer(vocab_size={self.vocab_size}, lowercase={lowercase})"


def _bert_encoding(encoding: tokenizers.Encoding) -> BertEncoding:
    """Our encoding of a HF one: word indices of the second text shifted past the first's."""
    words = encoding.word_ids  # per text, each from 0; None for specials
    sequences = encoding.sequence_ids  # 0 or 1 per token; None for specials
    pairs = list(zip(words, sequences, strict=True))
    offset = 1 + max((w for w, s in pairs if s == 0 and w is not None), default=-1)
    shifted = [w + offset if s == 1 and w is not None else w for w, s in pairs]
    return BertEncoding(ids=encoding.ids, segments=encoding.type_ids, words=shifted)


def load_bert_tokenizer(directory: str | os.PathLike[str]) -> BertTokenizer:
    """The BERT tokenizer saved in a model directory (`directory/tokenizer.json`), or at a
    `tokenizer.json` path.

    Raises:
        DataError: no tokenizer there, or a file that is not a BERT tokenizer; it is named.
    """
    path = Path(directory)
    if path.is_dir():
        path = path / FILE_NAME
    return BertTokenizer.from_file(path)


def train_bert_tokenizer(
    files: Sources,
    vocab_size: int = 8000,
    lowercase: bool = True,
    min_frequency: int = 2,
    *,
    show_progress: bool = False,
) -> BertTokenizer:
    """Learn a BERT WordPiece vocabulary from text files (plain or .gz, UTF-8).

    Args:
        files: one path or a list of paths; lines are text, any length (documents are fine).
        vocab_size: size of the vocabulary, the 5 special tokens and every character of the
            text (at word start and as a "##" continuation) included. BERT used 30,000 (§3).
        lowercase: uncased BERT: lowercase and strip accents ("Café" → "cafe") when training
            and encoding. False keeps case and accents (cased BERT).
        min_frequency: minimum count of a pair of pieces to be merged into a new piece.
        show_progress: draw the `tokenizers` progress bars on stderr.

    Returns:
        A `BertTokenizer` with [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, the other tokens
        numbered in sorted order. Not bit-reproducible: two trainings on the same text may
        differ in a few rare pieces (see `_canonical_ids`); reuse the tokenizer.json to
        reproduce a run.

    Raises:
        ConfigError: `vocab_size` cannot hold the special tokens and the text's characters.
        DataError: a file is missing, empty, unreadable or not UTF-8 (file:line named).
    """
    _check_vocab_size(vocab_size)
    paths = source_paths(files)  # all checked before training starts
    # Chunks of whole lines: the normalizer turns newlines into spaces, and no WordPiece word
    # spans whitespace, so where the chunks are cut does not matter.
    chunks = (chunk for path in paths for chunk in iter_text_chunks(path))
    what = ", ".join(map(str, paths))
    return _train(chunks, what, vocab_size, lowercase, min_frequency, show_progress)


def train_bert_tokenizer_on_texts(
    texts: Iterable[str],
    vocab_size: int = 8000,
    lowercase: bool = True,
    min_frequency: int = 2,
    *,
    show_progress: bool = False,
) -> BertTokenizer:
    """`train_bert_tokenizer` on texts in memory (e.g. the sentences of a labelled table)."""
    _check_vocab_size(vocab_size)
    return _train(iter(texts), "texts", vocab_size, lowercase, min_frequency, show_progress)


def _check_vocab_size(vocab_size: int) -> None:
    if (
        isinstance(vocab_size, bool)
        or not isinstance(vocab_size, int)
        or vocab_size <= len(BERT_SPECIAL_TOKENS)
    ):
        raise ConfigError(
            f"vocab_size={vocab_size!r} is too small: a BERT vocabulary holds the "
            f"{len(BERT_SPECIAL_TOKENS)} special tokens and the characters of the text"
        )


def _train(
    chunks: Iterator[str],
    what: str,
    vocab_size: int,
    lowercase: bool,
    min_frequency: int,
    show_progress: bool,
) -> BertTokenizer:
    model = models.WordPiece(
        unk_token=UNK,
        continuing_subword_prefix=CONTINUATION_PREFIX,
        max_input_chars_per_word=MAX_WORD_CHARS,
    )
    backend = tokenizers.Tokenizer(model)
    # strip_accents follows lowercase, as in uncased (stripped) vs cased (kept) BERT.
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX, cleanup=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(BERT_SPECIAL_TOKENS),  # first, so that they get ids 0..4
        continuing_subword_prefix=CONTINUATION_PREFIX,
        show_progress=show_progress,
    )
    start = time.perf_counter()
    backend.train_from_iterator(chunks, trainer=trainer)
    size = backend.get_vocab_size(with_added_tokens=True)
    if size > vocab_size:
        # The trainer keeps every character even past vocab_size; each is needed, or words with
        # it become [UNK].
        raise ConfigError(
            f"vocab_size={vocab_size} is too small for this text: the special tokens and its "
            f"characters alone take {_n_alphabet(backend)} entries; use a larger vocab_size"
        )
    _canonical_ids(backend)
    logger.info(
        "trained BERT WordPiece vocabulary of %d tokens (asked for %d) on %s in %.1f s",
        size, vocab_size, what, time.perf_counter() - start,
    )  # fmt: skip
    return BertTokenizer(backend)


def _canonical_ids(backend: tokenizers.Tokenizer) -> None:
    """Renumber the vocabulary: the specials 0..4, then every other token in sorted order.

    The trainer numbers tokens in hash order, different in every training; WordPiece segments
    by the vocabulary as a set (longest match), so renumbering changes no segmentation and
    makes two trainings that learned the same pieces give the same ids. It cannot make them
    learn the same pieces: the trainer also breaks ties between equally frequent merges in hash
    order, which on real text changes a few rare pieces from run to run (Multi30k's val.en at
    2,000 tokens: 4 different vocabularies in 4 runs). A run that must be reproduced reuses its
    tokenizer.json."""
    vocab = backend.get_vocab(with_added_tokens=True)
    rest = sorted(t for t in vocab if t not in BERT_SPECIAL_TOKENS)
    ordered = {token: i for i, token in enumerate([*BERT_SPECIAL_TOKENS, *rest])}
    backend.model = models.WordPiece(
        ordered,
        unk_token=UNK,
        continuing_subword_prefix=CONTINUATION_PREFIX,
        max_input_chars_per_word=MAX_WORD_CHARS,
    )


def _n_alphabet(backend: tokenizers.Tokenizer) -> int:
    """Entries that are a special token or one character (at word start or continuing)."""
    vocab = backend.get_vocab(with_added_tokens=True)
    return sum(
        1
        for t in vocab
        if t in BERT_SPECIAL_TOKENS or len(t.removeprefix(CONTINUATION_PREFIX)) == 1
    )


__all__ = [
    "BERT_SPECIAL_TOKENS",
    "FILE_NAME",
    "BertEncoding",
    "BertTokenizer",
    "load_bert_tokenizer",
    "train_bert_tokenizer",
    "train_bert_tokenizer_on_texts",
]
