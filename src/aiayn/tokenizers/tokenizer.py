"""`Tokenizer`: text ↔ token ids, a thin typed wrapper over a HF `tokenizers.Tokenizer`.

The Rust library does the work (normalization, byte-level pre-tokenization, BPE or WordPiece,
batched encoding on all cores); this class fixes the conventions the rest of aiayn relies on:

- the special tokens `<pad>`, `<s>`, `</s>`, `<unk>` have ids 0, 1, 2, 3 (see `special_tokens`);
- `<s>`/`</s>` are added per call (`add_bos`, `add_eos`), not by a post-processor, so the same
  tokenizer serves encoder inputs (`x </s>`), decoder inputs (`<s> y`) and targets (`y </s>`);
- special-token strings inside user text are ordinary text: `encode("a </s> b")` does not emit
  id 2, so no input can forge an end of sentence;
- `decode(encode(x)) == x` for every string `x` that is already in the tokenizer's Unicode
  normalization form (NFC by default), because training uses a byte-level pre-tokenizer and the
  matching decoder (see `train.py`); a tokenizer trained with `lowercase=True` returns it
  lowercased (`lowercases` says which kind a loaded tokenizer is).

The file format is the library's own `tokenizer.json`, so the vocabulary can be inspected with
any JSON viewer or loaded by `tokenizers.Tokenizer.from_file` elsewhere. One caveat for such use:
the "special tokens are plain text in the input" switch is not stored in the file, so a plain
`tokenizers.Tokenizer` loaded from it would turn a literal "</s>" in the text into id 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tokenizers

from aiayn.errors import DataError
from aiayn.io import atomic_write_text
from aiayn.tokenizers.special_tokens import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID

logger = logging.getLogger(__name__)


class Tokenizer:
    """Encode text to token ids and decode ids back to text.

    Build one with `train_bpe`/`train_wordpiece`, or load one with `Tokenizer.load(path)`.

    Example::

        tok = train_bpe(["train.en.gz", "train.de.gz"], vocab_size=8000)
        ids = tok.encode("Ein Mann läuft.")          # [..., 2]  (ends with </s>)
        tok.decode(ids)                               # "Ein Mann läuft."
        tok.save("model/tokenizer.json")

    Args:
        backend: a `tokenizers.Tokenizer` whose first four tokens are `<pad>`, `<s>`, `</s>`,
            `<unk>` (ids 0..3). It is used as is (not copied); its `encode_special_tokens` switch
            is turned on so that special-token strings in the text are encoded as plain text.

    Raises:
        ValueError: if `backend` does not have the special tokens at the fixed ids.
    """

    def __init__(self, backend: tokenizers.Tokenizer) -> None:
        _check_special_tokens(backend)
        # Treat "<s>", "</s>", ... inside user text as text, not as control tokens: a caption that
        # happens to contain "</s>" must neither end the sentence nor vanish when decoded.
        backend.encode_special_tokens = True
        self._backend = backend

    # ------------------------------------------------------------------ ids of special tokens
    @property
    def pad_id(self) -> int:
        """Id of `<pad>` (always 0)."""
        return PAD_ID

    @property
    def bos_id(self) -> int:
        """Id of `<s>`, the beginning-of-sentence token (always 1)."""
        return BOS_ID

    @property
    def eos_id(self) -> int:
        """Id of `</s>`, the end-of-sentence token (always 2)."""
        return EOS_ID

    @property
    def unk_id(self) -> int:
        """Id of `<unk>` (always 3); byte-level vocabularies never emit it."""
        return UNK_ID

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included; valid ids are `0 .. vocab_size - 1`."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    @property
    def lowercases(self) -> bool:
        """Whether encoding lowercases the text, so that decoded text is always lowercase."""
        normalizer = self._backend.normalizer
        # Asked of the normalizer itself, so it holds for any pipeline in a tokenizer.json.
        return normalizer is not None and normalizer.normalize_str("AÄ") == "aä"

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The underlying `tokenizers.Tokenizer`, for anything this wrapper does not expose."""
        return self._backend

    # ----------------------------------------------------------------------------- encoding
    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = True) -> list[int]:
        """Token ids of one string, optionally framed by `<s>` and `</s>`.

        The defaults suit encoder inputs and decoder targets (`x </s>`); a decoder input is
        `encode(y, add_bos=True, add_eos=False)`.
        """
        ids = self._backend.encode(text, add_special_tokens=False).ids
        return _frame(ids, add_bos, add_eos)

    def encode_batch(
        self, texts: Iterable[str], *, add_bos: bool = False, add_eos: bool = True
    ) -> list[list[int]]:
        """Token ids of many strings, encoded in parallel in Rust; same result as `encode`."""
        # encode_batch_fast skips computing character offsets, which we never use.
        encodings = self._backend.encode_batch_fast(list(texts), add_special_tokens=False)
        return [_frame(e.ids, add_bos, add_eos) for e in encodings]

    def tokenize(self, text: str) -> list[str]:
        """The subword strings `encode` would produce (no `<s>`/`</s>`), for inspection.

        Tokens are byte-level strings: a leading space shows as "Ġ" and a non-ASCII character as
        the characters standing for its UTF-8 bytes ("ü" → "Ã¼").
        """
        return self._backend.encode(text, add_special_tokens=False).tokens

    # ----------------------------------------------------------------------------- decoding
    def decode(self, ids: Sequence[int] | Any, *, skip_special: bool = True) -> str:
        """Text of a sequence of ids (a list, or a 1-D tensor/array).

        With `skip_special` (default) `<pad>`, `<s>`, `</s>`, `<unk>` are dropped; otherwise they
        appear as their strings. Ids outside the vocabulary are ignored. Decoding does not stop
        at `</s>`; cutting a generated sequence there is the decoder's job.
        """
        return self._backend.decode(_as_id_list(ids), skip_special_tokens=skip_special)

    def decode_batch(
        self, batch: Sequence[Sequence[int]] | Any, *, skip_special: bool = True
    ) -> list[str]:
        """Texts of many id sequences (a list of lists, or a 2-D tensor/array with padding)."""
        sequences = [_as_id_list(ids) for ids in _as_list(batch)]
        return self._backend.decode_batch(sequences, skip_special_tokens=skip_special)

    # ------------------------------------------------------------------------- vocabulary
    def token_to_id(self, token: str) -> int | None:
        """Id of a vocabulary entry (a byte-level string such as "Ġhouse"), or None."""
        return self._backend.token_to_id(token)

    def id_to_token(self, id: int) -> str | None:
        """Vocabulary entry of an id, or None if the id is out of range."""
        return self._backend.id_to_token(id)

    # ---------------------------------------------------------------------- saving/loading
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as a `tokenizer.json`-style file, creating parent directories.

        The file is written next to its destination and then renamed, so an interrupted save
        never leaves a truncated file behind.
        """
        atomic_write_text(path, self._backend.to_str(pretty=True))
        logger.debug("saved tokenizer to %s", path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a tokenizer written by `save`.

        Raises:
            DataError: if the file is missing, unreadable, not a tokenizer, or lacks the special
                tokens at ids 0..3; the message names the file.
        """
        path = Path(path)
        if path.is_dir():
            raise DataError(
                f"{path} is a directory, not a tokenizer file; "
                "use aiayn.tokenizers.TokenizerPair.load for a model directory"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(
                f"tokenizer file not found: {path}; check the path or train one with "
                "aiayn.tokenizers.train_bpe"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read tokenizer file {path}: {_one_line(e)}") from e
        try:
            backend = tokenizers.Tokenizer.from_str(text)
        except Exception as e:  # the Rust side raises a bare Exception for any parse error
            raise DataError(
                f"corrupt tokenizer file {path} ({_one_line(e)}); "
                "restore it or train a new tokenizer"
            ) from e
        try:
            return cls(backend)
        except ValueError as e:
            raise DataError(f"tokenizer file {path} was not made by aiayn: {e}") from e

    # ------------------------------------------------------------------------------ python
    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickling (e.g. to DataLoader workers) round-trips the backend through JSON, which
        # drops the encode_special_tokens switch; turn it back on.
        self.__dict__.update(state)
        self._backend.encode_special_tokens = True

    def __repr__(self) -> str:
        model = type(self._backend.model).__name__
        normalizer = self._backend.normalizer
        steps = [] if normalizer is None else [normalizer]
        if isinstance(normalizer, tokenizers.normalizers.Sequence):
            steps = [normalizer[i] for i in range(len(normalizer))]
        names = [type(n).__name__ for n in steps if type(n).__name__ != "Lowercase"]
        normalization = "+".join(names) or None
        return (
            f"Tokenizer({model}, vocab_size={self.vocab_size}, normalization={normalization}, "
            f"lowercase={self.lowercases})"
        )


def _check_special_tokens(backend: tokenizers.Tokenizer) -> None:
    """Raise ValueError unless ids 0..3 are the special tokens `<pad> <s> </s> <unk>`."""
    added = backend.get_added_tokens_decoder()  # {id: AddedToken}
    for id, expected in enumerate(SPECIAL_TOKENS):
        token = added.get(id)
        if token is None or token.content != expected or not token.special:
            found = "nothing" if token is None else repr(token.content)
            raise ValueError(
                f"expected special token {expected!r} at id {id}, found {found} "
                f"(aiayn vocabularies start with {' '.join(SPECIAL_TOKENS)})"
            )


def _frame(ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
    """Add `<s>` in front and/or `</s>` at the end."""
    if add_bos:
        ids = [BOS_ID, *ids]
    if add_eos:
        ids = [*ids, EOS_ID]
    return ids


def _as_list(x: Any) -> list[Any]:
    """A list from a list, tuple, tensor or array (tensors and arrays have `.tolist()`)."""
    return x.tolist() if hasattr(x, "tolist") else list(x)


def _as_id_list(ids: Any) -> list[int]:
    """A flat list of Python ints, which is what the Rust side accepts."""
    return [int(i) for i in _as_list(ids)]


def _one_line(e: BaseException) -> str:
    """An exception's message on one line, for one-line user errors."""
    return " ".join(str(e).split())
