"""WordPiece vs byte-pair encoding (vs unigram): what does the subword model change?
(QUESTIONS.md 24)

    python -m experiments.subwords --out docs/why     # 4.2 minutes on 1 of 2 shared CPU cores

Each subword model trained with HF `tokenizers` on the Multi30k training text of one language
(29,000 English or German sentences, `../shared/data/multi30k`) at vocabulary sizes 1k … 32k,
then run on that language's 2016 Flickr test set (1,000 sentences):

- byte-level, as aiayn trains them (`aiayn.tokenizers.train_bpe`, `train_wordpiece`; a unigram
  LM (Kudo 2018) on the same byte-level pipeline): every byte is in the vocabulary, so nothing
  is ever unknown;
- character-level with whitespace/punctuation pre-splitting (the classic BERT / SentencePiece-
  free setup): characters unseen in training become `<unk>` — WordPiece then loses the whole
  word.

Measured on the test set: mean tokens per sentence (sequence length, the cost of attention),
the share of pieces that are a single character (or a byte of one: text the model must spell
out), and the share of tokens that are `<unk>`. BLEU per vocabulary is measured elsewhere: no
translation model is trained here. Without `../shared` the run says so and measures nothing.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.common import cli, pyplot, save_figure, seed_everything

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
SIZES = [1000, 2000, 4000, 8000, 16000, 32000]
LANGS = ("en", "de")
KINDS = ("bpe", "wordpiece", "unigram")
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def read_lines(path: Path, limit: int | None = None) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit]


def byte_level(kind: str) -> Callable[[list[str], int], Any]:
    """A trainer (sentences, vocab size) -> `tokenizers.Tokenizer`, byte-level as aiayn."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from aiayn.tokenizers import train_bpe, train_wordpiece

    def unigram(lines: list[str], size: int) -> Tokenizer:
        backend = Tokenizer(models.Unigram())
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.UnigramTrainer(
            vocab_size=size, special_tokens=SPECIALS, unk_token="<unk>",
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )  # fmt: skip
        backend.train_from_iterator(lines, trainer=trainer)
        return backend

    if kind == "unigram":
        return unigram
    train = train_bpe if kind == "bpe" else train_wordpiece
    return lambda lines, size: train(iter(lines), size).backend


def char_level(kind: str) -> Callable[[list[str], int], Any]:
    """A trainer (sentences, vocab size) -> `tokenizers.Tokenizer` over characters, words
    pre-split on whitespace and punctuation; no byte fallback."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    def train(lines: list[str], size: int) -> Tokenizer:
        model, trainer = {
            "bpe": (models.BPE(unk_token="<unk>"), trainers.BpeTrainer),
            "wordpiece": (models.WordPiece(unk_token="<unk>"), trainers.WordPieceTrainer),
            "unigram": (models.Unigram(), trainers.UnigramTrainer),
        }[kind]
        options: dict[str, Any] = {"unk_token": "<unk>"} if kind == "unigram" else {}
        backend = Tokenizer(model)
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.train_from_iterator(lines, trainer=trainer(
            vocab_size=size, special_tokens=SPECIALS, show_progress=False, **options))  # fmt: skip
        return backend

    return train


def piece_length(backend: Any, piece: str) -> int:
    """Characters of text a piece stands for (a byte of a multi-byte character counts 1)."""
    if backend.decoder is not None:  # byte-level: decode the bytes
        text = backend.decoder.decode([piece.removeprefix("＃＃")])
    else:
        text = piece.removeprefix("##")
    return len(text.strip()) or 1


def measure(backend: Any, test: list[str]) -> dict[str, float]:
    """Vocabulary size, mean tokens per sentence, single-character share, unknown share."""
    encodings = backend.encode_batch(test)
    pieces = [p for e in encodings for p in e.tokens]
    lengths: dict[str, int] = {}
    single = 0
    for p in pieces:
        if p not in lengths:
            lengths[p] = piece_length(backend, p)
        single += lengths[p] == 1
    return {
        "vocab_size": backend.get_vocab_size(),
        "tokens_per_sentence": len(pieces) / len(test),
        "single_char_share": single / len(pieces),
        "unk_share": sum(p == "<unk>" for p in pieces) / len(pieces),
    }


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)  # training is deterministic but for WordPiece's tie-breaking
    if not (DATA / "train.en.gz").is_file():
        message = f"skipped: the Multi30k text is not at {DATA} (it lives in ../shared/data)"
        print(message)
        return {"skipped": message}
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core for the tokenizers' trainers
    sizes = [600, 1000] if smoke else SIZES
    limit, test_limit = (2000, 100) if smoke else (None, None)
    figures: dict[str, Any] = {"sizes": sizes, "results": []}
    for lang in LANGS:
        train = read_lines(DATA / f"train.{lang}.gz", limit)
        test = read_lines(DATA / f"test_2016_flickr.{lang}.gz", test_limit)
        figures[f"words_per_sentence_{lang}"] = sum(len(s.split()) for s in test) / len(test)
        for level, make in (("byte", byte_level), ("char", char_level)):
            for kind in KINDS:
                for size in sizes:
                    backend = make(kind)(train, size)
                    row = {"lang": lang, "level": level, "kind": kind, "asked": size}
                    figures["results"].append({**row, **measure(backend, test)})
    figures["answer"] = answer(figures)
    plot(figures, out / "subwords.png")
    return figures


def _find(figures: dict[str, Any], **key: Any) -> dict[str, Any]:
    return next(r for r in figures["results"] if all(r[k] == v for k, v in key.items()))


def answer(figures: dict[str, Any]) -> str:
    small, large = figures["sizes"][0], figures["sizes"][-1]
    parts = []
    for lang in LANGS:
        length = {
            (kind, size): _find(figures, lang=lang, level="byte", kind=kind, asked=size)[
                "tokens_per_sentence"
            ]
            for kind in KINDS
            for size in (small, large)
        }
        cells = ", ".join(f"{k} {length[k, small]:.1f} → {length[k, large]:.1f}" for k in KINDS)
        parts.append(f"{lang} ({figures[f'words_per_sentence_{lang}']:.1f} words): {cells}")
    unk = {kind: max(r["unk_share"] for r in figures["results"]
                     if r["level"] == "char" and r["kind"] == kind) for kind in KINDS}  # fmt: skip
    return (
        f"Tokens per test sentence, byte-level, vocabulary {small} → {large}: "
        + "; ".join(parts)
        + ". Unknown tokens: 0 for every byte-level vocabulary; character-level at most "
        + ", ".join(f"{k} {v:.2%}" for k, v in unk.items())
        + "."
    )


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    panels = (("tokens_per_sentence", "tokens per test sentence", "byte"),
              ("single_char_share", "share of single-character pieces", "byte"),
              ("unk_share", "share of <unk> tokens", "char"))  # fmt: skip
    colours = dict(zip(KINDS, ("C0", "C1", "C2"), strict=True))
    for ax, (key, label, level) in zip(axes, panels, strict=True):
        for kind in KINDS:
            for lang, style in zip(LANGS, ("o-", "s--"), strict=True):
                rows = [r for r in figures["results"]
                        if (r["lang"], r["level"], r["kind"]) == (lang, level, kind)]  # fmt: skip
                ax.plot([r["vocab_size"] for r in rows], [r[key] for r in rows], style,
                        color=colours[kind], label=f"{kind}, {lang}")  # fmt: skip
        ax.set(xscale="log", xlabel="vocabulary size (as trained)", ylabel=label,
               title=f"{label} ({level}-level)")  # fmt: skip
        ax.legend(fontsize=7)
    save_figure(fig, path)


main = cli("subwords", __doc__, run)

if __name__ == "__main__":
    main()
