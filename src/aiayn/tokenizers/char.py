"""`CharTokenizer`: one token per Unicode character, for character-level language models.

The vocabulary is the package's four special tokens at their fixed ids (`<pad>` 0, `<s>` 1,
`</s>` 2, `<unk>` 3; see `special_tokens`) followed by the characters of the training text in
code-point order, so the same text always gives the same ids (Tiny Shakespeare: 65 characters,
69 ids). A character never seen in training (in a prompt, say) becomes `<unk>` instead of an
error. There is no normalization: any text made of known characters, newlines, tabs and runs of
spaces included, decodes back exactly.

As a language-model tokenizer (see `lm.py`) `</s>` is the end-of-text token that frames every
document, and so also the start token for generation. Special tokens are never made from text:
the characters "</s>" in the input are four ordinary characters.

The file is a small JSON object with a `"type": "char"` marker, which is how `load_lm_tokenizer`
tells it from a BPE `tokenizer.json`::

    {"type": "char", "version": 1, "special_tokens": ["<pad>", "<s>", "</s>", "<unk>"],
     "characters": "\\n !$&',-.3:;?ABC…"}       # id of characters[k] is 4 + k
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiayn.errors import DataError
from aiayn.io import atomic_write_text
from aiayn.tokenizers.special_tokens import SPECIAL_TOKENS, UNK_ID, LMSpecialIds

logger = logging.getLogger(__name__)

TYPE = "char"
VERSION = 1
FILE_NAME = "tokenizer.json"


class CharTokenizer(LMSpecialIds):
    """Character-level tokenizer: text ↔ ids, one id per character.

    Example::

        tok = CharTokenizer.train(["First Citizen:\\nBefore we proceed"])
        ids = tok.encode("Before")          # [8, 21, ...]; no framing tokens added
        tok.decode(ids)                     # "Before"
        tok.encode("Bé")                    # [8, 3]: "é" was not in the training text → <unk>
        tok.save("runs/lm")                 # runs/lm/tokenizer.json

    Args:
        characters: the vocabulary's characters, strictly increasing by code point (as
            `train` makes them); characters[k] gets id `len(SPECIAL_TOKENS) + k`.

    Raises:
        ValueError: if `characters` is empty or not strictly increasing.
    """

    kind = TYPE

    def __init__(self, characters: str) -> None:
        if not characters:
            raise ValueError("a character vocabulary needs at least one character")
        if any(a >= b for a, b in itertools.pairwise(characters)):
            raise ValueError("characters must be distinct and sorted by code point")
        self._characters = characters
        self._first = len(SPECIAL_TOKENS)  # id of characters[0]
        # Sorted code points make encoding one vectorized binary search (np.searchsorted).
        self._code_points = _code_points(characters)  # (n_chars,) uint32, increasing
        self._pieces = [""] * self._first + list(characters)  # id → text ("" for specials)

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        """The tokenizer whose vocabulary is every character of `texts` (strings or chunks).

        Raises:
            DataError: if the texts hold no character at all.
        """
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        if not seen:
            raise DataError("no text to build a character vocabulary from")
        tokenizer = cls("".join(sorted(seen)))
        logger.info("character vocabulary: %d characters", len(seen))
        return tokenizer

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included; valid ids are `0 .. vocab_size - 1`."""
        return len(self._pieces)

    @property
    def characters(self) -> str:
        """The vocabulary's characters in id order (the first has id 4)."""
        return self._characters

    # ------------------------------------------------------------------- encoding/decoding
    def encode_array(self, text: str) -> np.ndarray:
        """Ids of `text` as an int64 array (unknown characters → `<unk>`). Shape: (len(text),)."""
        points = _code_points(text)  # (n,)
        at = np.searchsorted(self._code_points, points)  # where each would sit in the vocabulary
        at = np.minimum(at, len(self._code_points) - 1)
        known = self._code_points[at] == points
        return np.where(known, at + self._first, UNK_ID).astype(np.int64)

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, one per character; no start or end token is added."""
        return self.encode_array(text).tolist()

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """Ids of several texts; same as `encode` on each."""
        return [self.encode(text) for text in texts]

    def decode(self, ids: Sequence[int] | Any, *, skip_special: bool = True) -> str:
        """Text of ids (a list, or a 1-D tensor/array). Special tokens are dropped, or shown as
        their strings with `skip_special=False`; ids outside the vocabulary are ignored.

        Every id is a whole character, so decoding a prefix and then the rest gives the text of
        the whole: a stream can be decoded id by id.
        """
        pieces, n = self._pieces, len(self._pieces)
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        if skip_special:
            return "".join(pieces[i] for i in ids if 0 <= i < n)
        return "".join(pieces[i] or SPECIAL_TOKENS[i] for i in ids if 0 <= i < n)

    def token_bytes(self, id: int) -> bytes:
        """UTF-8 bytes of one token's text; b"" for special tokens and ids out of range."""
        if self._first <= id < len(self._pieces):
            return self._pieces[id].encode("utf-8", "surrogatepass")
        return b""

    # ---------------------------------------------------------------------- saving/loading
    def to_json(self) -> str:
        """The tokenizer as the JSON text `save` writes."""
        data = {
            "type": TYPE,
            "version": VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "characters": self._characters,
        }
        # ASCII escapes: any character (a lone surrogate too) survives the round trip.
        return json.dumps(data, indent=2) + "\n"

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the saved form: equal fingerprints encode every text the same way."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `tokenizer.json` into `directory` (created if needed), atomically; its path."""
        path = Path(directory) / FILE_NAME
        atomic_write_text(path, self.to_json())
        logger.debug("saved character tokenizer to %s", path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tokenizer") -> CharTokenizer:
        """The tokenizer described by a parsed `tokenizer.json` of type "char".

        Raises:
            DataError: an unknown version, other special tokens, or a bad character list;
                the message names `source`.
        """
        if data.get("type") != TYPE:
            raise DataError(f"{source}: not a character tokenizer (type {data.get('type')!r})")
        if data.get("version") != VERSION:
            raise DataError(
                f"{source}: character tokenizer version {data.get('version')!r} is not supported "
                f"(this aiayn reads version {VERSION}); upgrade aiayn"
            )
        if data.get("special_tokens") != list(SPECIAL_TOKENS):
            raise DataError(
                f"{source}: special tokens {data.get('special_tokens')!r} are not aiayn's "
                f"{list(SPECIAL_TOKENS)}"
            )
        characters = data.get("characters")
        if not isinstance(characters, str):
            raise DataError(f"{source}: 'characters' must be a string of the vocabulary")
        try:
            return cls(characters)
        except ValueError as e:
            raise DataError(f"{source}: {e}") from e

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _code_points(text: str) -> np.ndarray:
    """Unicode code points of `text`. Shape: (len(text),) uint32."""
    # UTF-32 is one fixed-width unit per character; surrogatepass keeps a lone surrogate (not
    # valid text, but a possible Python string) as its code point instead of failing.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


__all__ = ["CharTokenizer"]
