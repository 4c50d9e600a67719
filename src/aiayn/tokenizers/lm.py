"""Tokenizers for language-model text: one small interface, two kinds, streaming decode.

A decoder-only LM reads raw text (newlines, indentation, any Unicode), so its tokenizer must
give the text back exactly. Two kinds satisfy `LMTokenizer`:

- `CharTokenizer` (`char.py`): one id per character of the training text; unseen characters
  become `<unk>`.
- `ByteBPETokenizer` (here): byte-level BPE trained with HF `tokenizers` (`train_bpe` with no
  Unicode normalization), so `decode(encode(text)) == text` for every string, and nothing is
  ever `<unk>`.

Both start with the package's special tokens at fixed ids: `<pad>` 0, `<s>` 1, `</s>` 2,
`<unk>` 3. For language modelling `</s>` is the end-of-text token (GPT-2's `<|endoftext|>`):
the token file puts one before every document and one after the last, so the model learns
that a document starts after it and that predicting it ends one. Hence `bos_id == eot_id == 2`:
unconditional generation starts from `[bos_id]` and stops at `eot_id`. `<s>` is unused.

Streaming: a byte-level BPE token can hold part of a UTF-8 character ("é" may be two tokens),
so decoding ids one at a time with `decode` would show U+FFFD for the halves. `StreamDecoder`
(or `decode_stream`) turns ids into text as they arrive and emits only complete characters;
the pieces always join to `decode(ids)`.

Example::

    tok = train_lm_tokenizer("bpe", "input.txt", vocab_size=2000)   # or "char"
    tok.save("runs/lm")                                             # runs/lm/tokenizer.json
    tok = load_lm_tokenizer("runs/lm")                              # the right kind back
    stream = StreamDecoder(tok)
    for id in generated_ids:                                        # e.g. from the model
        print(stream.push(id), end="", flush=True)
    print(stream.finish())
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from tokenizers import decoders, models

from aiayn.errors import ConfigError, DataError
from aiayn.tokenizers.char import FILE_NAME, CharTokenizer
from aiayn.tokenizers.special_tokens import LMSpecialIds
from aiayn.tokenizers.text_files import Sources, iter_text_chunks, source_paths
from aiayn.tokenizers.tokenizer import Tokenizer
from aiayn.tokenizers.train import train_bpe

KINDS = ("char", "bpe")


class LMTokenizer(Protocol):
    """What a language model, its data and its generation need from a tokenizer."""

    kind: str  # "char" or "bpe"

    @property
    def vocab_size(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def bos_id(self) -> int: ...  # start token for generation (== eot_id)
    @property
    def eot_id(self) -> int: ...  # end of text: frames documents in the token file
    @property
    def unk_id(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...  # equal fingerprints encode every text the same way

    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]: ...
    def decode(self, ids: Sequence[int] | Any, *, skip_special: bool = True) -> str: ...
    def token_bytes(self, id: int) -> bytes: ...  # b"" for special tokens
    def save(self, directory: str | os.PathLike[str]) -> Path: ...


class ByteBPETokenizer(LMSpecialIds):
    """Byte-level BPE for language-model text: exact round trips, no `<unk>`, no framing.

    Wraps an aiayn `Tokenizer` (the HF library does the encoding) and gives it the LM
    conventions: `encode` adds no `<s>`/`</s>`, `bos_id` is the end-of-text token, and `decode`
    works on bytes so that `StreamDecoder` can split it anywhere.

    Example::

        tok = ByteBPETokenizer.train(["First Citizen:\\n", "Before we proceed"], vocab_size=300)
        tok.decode(tok.encode("  tabs\\tand\\n\\nnewlines ü")) == "  tabs\\tand\\n\\nnewlines ü"

    Args:
        tokenizer: a byte-level BPE `Tokenizer` (as `train_bpe` makes). One trained with a
            Unicode normalization still works, but gives back normalized text.

    Raises:
        ValueError: if `tokenizer` is not byte-level BPE.
    """

    kind = "bpe"

    def __init__(self, tokenizer: Tokenizer) -> None:
        backend = tokenizer.backend
        if not isinstance(backend.model, models.BPE) or not isinstance(
            backend.decoder, decoders.ByteLevel
        ):
            raise ValueError("ByteBPETokenizer needs a byte-level BPE tokenizer (see train_bpe)")
        self.tokenizer = tokenizer
        # id → the bytes it stands for: decoding is a join, and can stop mid-character.
        specials = backend.get_added_tokens_decoder()  # {id: AddedToken}
        self._bytes: list[bytes] = []
        self._bytes_with_specials: list[bytes] = []
        for id in range(tokenizer.vocab_size):
            if id in specials:
                self._bytes.append(b"")
                self._bytes_with_specials.append(specials[id].content.encode("utf-8"))
                continue
            token = tokenizer.id_to_token(id) or ""
            try:
                data = bytes(_BYTE_OF_CHAR[c] for c in token)
            except KeyError:
                raise ValueError(f"token {id} ({token!r}) is not byte-level") from None
            self._bytes.append(data)
            self._bytes_with_specials.append(data)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = 8000,
        min_frequency: int = 2,
        *,
        show_progress: bool = False,
    ) -> ByteBPETokenizer:
        """Learn a byte-level BPE vocabulary from `texts` (strings or chunks of a corpus).

        No Unicode normalization, so every string round-trips. Texts are whole chunks, not
        lines: merges across newlines ("\\n\\n", "\\n" + indentation) are learned too.
        Deterministic: the same texts and arguments give the same vocabulary.

        Raises:
            ConfigError: `vocab_size` below the 260 entries of the byte alphabet and specials.
        """
        # iter(): train_bpe reads a list as file paths. It strips a trailing "\n" from each
        # item (it expects lines); for corpus chunks that drops at most one newline run per
        # chunk from the statistics, and encoding is unaffected (every byte is in the vocabulary).
        tokenizer = train_bpe(
            iter(texts),
            vocab_size,
            min_frequency,
            normalization=None,
            show_progress=show_progress,
        )
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included; valid ids are `0 .. vocab_size - 1`."""
        return len(self._bytes)

    # ------------------------------------------------------------------- encoding/decoding
    def encode(self, text: str) -> list[int]:
        """Ids of `text`; no start or end token is added. "</s>" in the text is plain text."""
        return self.tokenizer.encode(text, add_eos=False)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """Ids of several texts, encoded in parallel; same as `encode` on each."""
        return self.tokenizer.encode_batch(texts, add_eos=False)

    def decode(self, ids: Sequence[int] | Any, *, skip_special: bool = True) -> str:
        """Text of ids (a list, or a 1-D tensor/array). Special tokens are dropped, or shown as
        their strings with `skip_special=False`; ids outside the vocabulary are ignored.

        Bytes that do not form complete UTF-8 (a sequence cut mid-character) show as U+FFFD;
        to decode ids as they are generated, use `StreamDecoder` instead of decoding pieces.
        """
        table = self._bytes if skip_special else self._bytes_with_specials
        n = len(table)
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return b"".join(table[i] for i in ids if 0 <= i < n).decode("utf-8", "replace")

    def token_bytes(self, id: int) -> bytes:
        """The bytes one token stands for (possibly part of a character); b"" for specials."""
        return self._bytes[id] if 0 <= id < len(self._bytes) else b""

    # ---------------------------------------------------------------------- saving/loading
    @property
    def fingerprint(self) -> str:
        """SHA-256 of the serialized tokenizer: equal fingerprints encode texts the same way."""
        return hashlib.sha256(self.tokenizer.backend.to_str().encode("utf-8")).hexdigest()

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `tokenizer.json` (the HF library's format) into `directory`; its path."""
        path = Path(directory) / FILE_NAME
        self.tokenizer.save(path)
        return path

    def __repr__(self) -> str:
        return f"ByteBPETokenizer(vocab_size={self.vocab_size})"


class StreamDecoder:
    """Decodes ids as they arrive, returning only complete characters.

    Byte-level tokens may end inside a UTF-8 character; the incomplete bytes are held until the
    token that completes them arrives. For any split of ids into pushes,
    `"".join(pushes) + finish() == tokenizer.decode(all_ids)`. One decoder per sequence (for a
    batch, one per row).

    Example::

        stream = StreamDecoder(tok)
        for id in ids:
            print(stream.push(id), end="")
        print(stream.finish())  # "" unless the ids ended mid-character (then "\\ufffd")
    """

    def __init__(self, tokenizer: LMTokenizer) -> None:
        self._token_bytes = tokenizer.token_bytes
        # The incremental decoder keeps an unfinished sequence for the next call; "replace"
        # turns invalid bytes into U+FFFD exactly as `decode` does.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids: int | Iterable[int] | Any) -> str:
        """Text completed by one id or several (an int, a list, a tensor); may be ""."""
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        ids = [ids] if isinstance(ids, int) else ids
        return self._utf8.decode(b"".join(self._token_bytes(int(i)) for i in ids))

    def finish(self) -> str:
        """The rest: "" normally, U+FFFD if the ids ended inside a character. Resets."""
        return self._utf8.decode(b"", final=True)


def decode_stream(tokenizer: LMTokenizer, ids: Iterable[int]) -> Iterator[str]:
    """Yield the text of `ids` piece by piece as they are consumed, never a partial character.

    The non-empty pieces join to `tokenizer.decode(list(ids))`.
    """
    stream = StreamDecoder(tokenizer)
    for id in ids:
        if text := stream.push(id):
            yield text
    if text := stream.finish():
        yield text


def train_lm_tokenizer(
    kind: str,
    sources: Sources,
    *,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    progress: bool = False,
) -> LMTokenizer:
    """Train a tokenizer of `kind` ("char" or "bpe") on text files (plain or .gz, UTF-8).

    Args:
        kind: "char" (vocabulary = the characters of the text) or "bpe" (byte-level BPE).
        sources: one path or a list of paths.
        vocab_size, min_frequency: BPE only, as `ByteBPETokenizer.train`.
        progress: BPE only: the HF library's progress bars on stderr.

    Raises:
        ConfigError: an unknown kind, or a vocabulary size too small for BPE.
        DataError: a file is missing, empty, a directory, or not UTF-8 (line and byte named).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; choose from {', '.join(KINDS)}")
    paths = source_paths(sources)
    texts = (chunk for path in paths for chunk in iter_text_chunks(path))
    if kind == "char":
        return CharTokenizer.train(texts)
    return ByteBPETokenizer.train(texts, vocab_size, min_frequency, show_progress=progress)


def load_lm_tokenizer(directory: str | os.PathLike[str]) -> LMTokenizer:
    """The tokenizer saved in a model directory (or a `tokenizer.json` path), of either kind.

    A file with `"type": "char"` is a `CharTokenizer`; a HF `tokenizer.json` (with a BPE
    `"model"`) is a `ByteBPETokenizer`.

    Raises:
        DataError: no tokenizer there, or a file that is neither kind; the message names it.
    """
    path = Path(directory)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"no tokenizer at {path}; train one with aiayn.tokenizers.train_lm_tokenizer"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read tokenizer {path}: {' '.join(str(e).split())}") from e
    if isinstance(data, dict) and data.get("type") == CharTokenizer.kind:
        return CharTokenizer.from_dict(data, str(path))
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        try:
            return ByteBPETokenizer(Tokenizer.load(path))
        except ValueError as e:
            raise DataError(f"{path}: {e}") from e
    raise DataError(
        f'{path} is not a language-model tokenizer: expected "type": "char" or a '
        "byte-level BPE tokenizer.json"
    )


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: each of the 256 characters → the byte it stands for.

    Printable Latin-1 bytes ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the other 68
    (controls, space, DEL, no-break space, soft hyphen) are moved, in byte order, to U+0100
    onward, so that every token is printable text.
    """
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or (0xA1 <= b <= 0xFF and b != 0xAD)]
    moved = [b for b in range(256) if b not in printable]
    alphabet = {chr(b): b for b in printable}
    alphabet.update({chr(0x100 + k): b for k, b in enumerate(moved)})
    return alphabet


_BYTE_OF_CHAR = _byte_level_alphabet()

__all__ = [
    "KINDS",
    "ByteBPETokenizer",
    "LMTokenizer",
    "StreamDecoder",
    "decode_stream",
    "load_lm_tokenizer",
    "train_lm_tokenizer",
]
