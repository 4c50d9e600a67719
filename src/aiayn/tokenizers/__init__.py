"""Subword tokenization: text → token ids and back, built on HF `tokenizers`.

- `Tokenizer` — encode/decode, special-token ids, save/load (`tokenizer.py`).
- `train_bpe`, `train_wordpiece` — learn a vocabulary from files or sentences (`train.py`).
- `TokenizerPair` — source/target tokenizers and their files in a model directory (`pair.py`).
- `PAD_ID`, `BOS_ID`, `EOS_ID`, `UNK_ID` — the fixed ids 0..3 (`special_tokens.py`).
- Language-model text (`lm.py`): `LMTokenizer`, the interface of `CharTokenizer` (`char.py`)
  and `ByteBPETokenizer`; `train_lm_tokenizer`, `load_lm_tokenizer`; `StreamDecoder` and
  `decode_stream` to decode generated ids as they come. Files are read by `text_files.py`.
- BERT (`bert.py`): `BertTokenizer` (WordPiece, "[CLS] A [SEP] B [SEP]", segments, word
  indices for whole-word masking), `train_bert_tokenizer`, `load_bert_tokenizer`; loads any HF
  BERT `tokenizer.json` too.

Example::

    from aiayn.tokenizers import TokenizerPair, train_bpe

    tok = train_bpe(["train.en.gz", "train.de.gz"], vocab_size=8000)  # shared vocabulary
    ids = tok.encode("Ein Mann läuft.")                             # ends with EOS_ID
    assert tok.decode(ids) == "Ein Mann läuft."
    TokenizerPair.shared(tok).save("runs/model")                    # runs/model/tokenizer.json

    lm_tok = train_lm_tokenizer("char", "input.txt")                # or "bpe", vocab_size=…
    assert lm_tok.decode(lm_tok.encode("To be,\\n  or not")) == "To be,\\n  or not"
"""

from aiayn.tokenizers.bert import (
    BertEncoding,
    BertTokenizer,
    load_bert_tokenizer,
    train_bert_tokenizer,
    train_bert_tokenizer_on_texts,
)
from aiayn.tokenizers.char import CharTokenizer
from aiayn.tokenizers.lm import (
    ByteBPETokenizer,
    LMTokenizer,
    StreamDecoder,
    decode_stream,
    load_lm_tokenizer,
    train_lm_tokenizer,
)
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
    "BertEncoding",
    "BertTokenizer",
    "ByteBPETokenizer",
    "CharTokenizer",
    "LMTokenizer",
    "StreamDecoder",
    "Tokenizer",
    "TokenizerPair",
    "decode_stream",
    "load_bert_tokenizer",
    "load_lm_tokenizer",
    "train_bert_tokenizer",
    "train_bert_tokenizer_on_texts",
    "train_bpe",
    "train_lm_tokenizer",
    "train_wordpiece",
]
