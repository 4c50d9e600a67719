"""Translation data: parallel text → tokenizers → token-id pairs, length-filtered.

Token ids: the source ends with </s> (as fairseq does: it marks where the sentence stops);
the target carries no special tokens, and collation gives the decoder <s> y_1 … y_n to read
and y_1 … y_n </s> to predict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiayn.data.parallel import IdPair, ReadStats, filter_by_length, read_parallel
from aiayn.errors import ConfigError
from aiayn.tokenizers import TokenizerPair, train_bpe, train_wordpiece

log = logging.getLogger(__name__)


@dataclass
class TranslationData:
    """Tokenized training pairs and raw validation text (BLEU is computed on raw text)."""

    tokenizers: TokenizerPair
    train: list[IdPair]
    train_stats: ReadStats
    valid_src: list[str]
    valid_ref: list[str]
    valid: list[IdPair]


def train_tokenizers(
    src_path: str | Path,
    tgt_path: str | Path,
    vocab_size: int = 8000,
    joint: bool = True,
    kind: str = "bpe",
    lowercase: bool = False,
) -> TokenizerPair:
    """One vocabulary over both languages (the paper's, §5.1) or one per side."""
    train = {"bpe": train_bpe, "wordpiece": train_wordpiece}.get(kind)
    if train is None:
        raise ConfigError(f"tokenizer '{kind}' is unknown; choose bpe or wordpiece")
    options = dict(vocab_size=vocab_size, lowercase=lowercase)
    if joint:
        return TokenizerPair.shared(train([src_path, tgt_path], **options))
    return TokenizerPair(train(src_path, **options), train(tgt_path, **options))


def encode_pairs(tokenizers: TokenizerPair, pairs: list[tuple[str, str]]) -> list[IdPair]:
    """Source ids end with </s>; target ids carry no specials (collation adds them)."""
    src = tokenizers.source.encode_batch([s for s, _ in pairs], add_eos=True)
    tgt = tokenizers.target.encode_batch([t for _, t in pairs], add_eos=False)
    return list(zip(src, tgt, strict=True))


def prepare_data(
    train_src: str | Path,
    train_tgt: str | Path,
    valid_src: str | Path,
    valid_tgt: str | Path,
    tokenizers: TokenizerPair | None = None,
    vocab_size: int = 8000,
    joint: bool = True,
    max_len: int = 256,
    kind: str = "bpe",
    lowercase: bool = False,
) -> TranslationData:
    """Read, tokenize (training a tokenizer if none is given) and length-filter the data.

    Pairs with a side longer than `max_len` tokens are dropped from training and counted,
    never truncated. Validation keeps every pair (its BLEU must cover the whole set).
    `lowercase` only matters when a tokenizer is trained here (see `train_bpe`).
    """
    pairs, stats = read_parallel(train_src, train_tgt)
    log.info("read %s / %s: %s", train_src, train_tgt, stats)
    if not pairs:
        raise ConfigError(f"{train_src}: no non-empty training pairs; check the files")
    # Read before a tokenizer is trained, so an unusable validation set fails in seconds.
    valid_pairs, _ = read_parallel(valid_src, valid_tgt)
    if not valid_pairs:
        raise ConfigError(
            f"{valid_src}: no non-empty validation pairs; validation needs at least one "
            "sentence pair (e.g. a few hundred held-out lines)"
        )
    if tokenizers is None:
        tokenizers = train_tokenizers(train_src, train_tgt, vocab_size, joint, kind, lowercase)
    encoded = encode_pairs(tokenizers, pairs)
    train, stats = filter_by_length(encoded, max_len - 1, stats=stats)
    if not train:
        shortest = min(max(len(s), len(t)) for s, t in encoded) + 1
        raise ConfigError(
            f"{train_src}: every training pair is longer than max_len={max_len} tokens (the "
            f"shortest needs {shortest}, </s> included); raise --max-len"
        )
    if stats.too_long:
        log.warning("%d training pairs longer than %d tokens were skipped", stats.too_long, max_len)
    return TranslationData(
        tokenizers=tokenizers,
        train=train,
        train_stats=stats,
        valid_src=[s for s, _ in valid_pairs],
        valid_ref=[t for _, t in valid_pairs],
        valid=encode_pairs(tokenizers, valid_pairs),
    )
