"""Subword tokenization: text → token ids and back, built on HF `tokenizers`.

- `Tokenizer` — encode/decode, special-token ids, save/load (`tokenizer.py`).
- `train_bpe`, `train_wordpiece` — learn a vocabulary from files or sentences (`train.py`).
- `TokenizerPair` — source/target tokenizers and their files in a model directory (`pair.py`).
- `PAD_ID`, `BOS_ID`, `EOS_ID`, `UNK_ID` — the fixed ids 0..3 (`special_tokens.py`).

Example::

    from aiayn.tokenizers import TokenizerPair, train_bpe

    tok = train_bpe(["train.en.gz", "train.de.gz"], vocab_size=8000)  # shared vocabulary
    ids = tok.encode("Ein Mann läuft.")                             # ends with EOS_ID
    assert tok.decode(ids) == "Ein Mann läuft."
    TokenizerPair.shared(tok).save("runs/model")                    # runs/model/tokenizer.json
"""

from aiayn.tokenizers.pair import SHARED_FILE, SOURCE_FILE, TARGET_FILE, TokenizerPair
from aiayn.tokenizers.special_tokens import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK,
    UNK_ID,
)
from aiayn.tokenizers.tokenizer import Tokenizer
from aiayn.tokenizers.train import WORDPIECE_PREFIX, train_bpe, train_wordpiece

__all__ = [
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "PAD",
    "PAD_ID",
    "SHARED_FILE",
    "SOURCE_FILE",
    "SPECIAL_TOKENS",
    "TARGET_FILE",
    "UNK",
    "UNK_ID",
    "WORDPIECE_PREFIX",
    "Tokenizer",
    "TokenizerPair",
    "train_bpe",
    "train_wordpiece",
]
