"""`TokenizerPair`: the source and target tokenizers of a translation model, and their files.

A model directory holds either one `tokenizer.json` (a vocabulary shared by source and target, as
in the paper, §5.1) or `tokenizer.src.json` and `tokenizer.tgt.json` (separate vocabularies).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aiayn.errors import DataError
from aiayn.tokenizers.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

SHARED_FILE = "tokenizer.json"
SOURCE_FILE = "tokenizer.src.json"
TARGET_FILE = "tokenizer.tgt.json"


@dataclass(frozen=True)
class TokenizerPair:
    """Source- and target-side tokenizers; shared when both are the same object.

    Example::

        shared = TokenizerPair.shared(train_bpe(["train.en.gz", "train.de.gz"]))
        separate = TokenizerPair(train_bpe("train.en.gz"), train_bpe("train.de.gz"))
        shared.save("model/")                  # model/tokenizer.json
        separate.save("model/")                # model/tokenizer.src.json, tokenizer.tgt.json
        TokenizerPair.load("model/").is_shared

    Attributes:
        source: encodes the input language.
        target: encodes and decodes the output language.
    """

    source: Tokenizer
    target: Tokenizer

    @classmethod
    def shared(cls, tokenizer: Tokenizer) -> TokenizerPair:
        """A pair that uses one tokenizer (one vocabulary) for both sides."""
        return cls(tokenizer, tokenizer)

    @property
    def is_shared(self) -> bool:
        """True when source and target are the same tokenizer (saved as one file).

        Sharing is identity, not equal contents: it is what lets a model tie its source and
        target embeddings (§3.4), which needs one vocabulary by construction.
        """
        return self.source is self.target

    def save(self, model_dir: str | os.PathLike[str]) -> list[Path]:
        """Write the tokenizer file(s) into `model_dir` (created if needed); return their paths.

        Files of the other layout left by an earlier save are removed, so that `load` never sees
        both a shared and a separate vocabulary.
        """
        model_dir = Path(model_dir)
        if self.is_shared:
            written = {SHARED_FILE: self.source}
        else:
            written = {SOURCE_FILE: self.source, TARGET_FILE: self.target}
        for name, tokenizer in written.items():
            tokenizer.save(model_dir / name)
        for name in {SHARED_FILE, SOURCE_FILE, TARGET_FILE} - written.keys():
            stale = model_dir / name
            if stale.exists():
                logger.info("removing %s left by an earlier save", stale)
                stale.unlink()
        return [model_dir / name for name in written]

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> TokenizerPair:
        """Read the tokenizer(s) that `save` wrote into `model_dir`.

        Raises:
            DataError: if the directory holds no tokenizer, only one of the separate files, both
                layouts at once, or a file `Tokenizer.load` rejects; the message names the path.
        """
        model_dir = Path(model_dir)
        shared, source, target = (model_dir / n for n in (SHARED_FILE, SOURCE_FILE, TARGET_FILE))
        if not model_dir.is_dir():
            raise DataError(f"model directory not found: {model_dir}")
        if shared.exists():
            if source.exists() or target.exists():
                raise DataError(
                    f"{model_dir} holds both {SHARED_FILE} and {SOURCE_FILE}/{TARGET_FILE}; "
                    "delete the layout that is stale"
                )
            return cls.shared(Tokenizer.load(shared))
        if source.exists() or target.exists():
            # Loading names the missing file of the two in its error.
            return cls(Tokenizer.load(source), Tokenizer.load(target))
        raise DataError(
            f"no tokenizer in {model_dir}: expected {SHARED_FILE} (shared vocabulary) or "
            f"{SOURCE_FILE} and {TARGET_FILE} (separate vocabularies)"
        )
