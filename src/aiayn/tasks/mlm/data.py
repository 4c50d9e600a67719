"""Pretraining sequences from lines of text, as BERT lays them out.

Consecutive lines of a file are packed greedily into sequences of at most `context` tokens,

    [CLS] line_i … line_j [SEP] line_j+1 … line_k [SEP]
    └──────── segment A (0) ────┘└──── segment B (1) ───┘

split at the line boundary nearest the middle, so both segment embeddings are trained (BERT
pairs two spans the same way; its next-sentence objective, which RoBERTa found useless, is
left out). A sequence of one line has no B. A line longer than a sequence is cut into pieces.
Short lines (captions, dialogue) thus fill the sequences instead of padding them.

Parallel text is laid out as XLM's translation LM does: one pair a sequence,

    [CLS] line_i of the first file [SEP] line_i of the second [SEP]

so that masked words in one language can be recovered from the other — the layout a sentence-
pair classifier later sees ([CLS] source [SEP] translation [SEP]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from aiayn.tokenizers.bert import BertTokenizer


@dataclass
class Packed:
    """Pretraining sequences: ids, segment ids and word indices (-1 for special tokens), each
    a list of 1-D int arrays, one per sequence, [CLS] and [SEP]s included."""

    ids: list[np.ndarray]
    segments: list[np.ndarray]
    words: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, other: Packed) -> None:
        self.ids += other.ids
        self.segments += other.segments
        self.words += other.words

    def lengths(self) -> np.ndarray:
        """Each sequence's length as the (N, 2) pairs batch planning takes (one side each)."""
        lengths = np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))
        return np.stack([lengths, lengths], axis=1)


def pack_lines(
    tokenizer: BertTokenizer, lines: Sequence[str], context: int, batch: int = 4096
) -> Packed:
    """Pack `lines` (one file's, in order; empty ones skipped) into sequences of at most
    `context` tokens (see the module's docstring)."""
    budget = context - 3  # [CLS], [SEP], [SEP]
    pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (ids, words) of each line or part
    for start in range(0, len(lines), batch):
        chunk = [line for line in lines[start : start + batch] if line.strip()]
        for enc in tokenizer.encode_batch(chunk):
            ids = np.asarray(enc.ids[1:-1], dtype=np.int64)  # without [CLS] … [SEP]
            words = np.asarray([-1 if w is None else w for w in enc.words[1:-1]], dtype=np.int64)
            for cut in range(0, len(ids), budget):
                pieces.append((ids[cut : cut + budget], words[cut : cut + budget]))
    out = Packed([], [], [])
    group: list[tuple[np.ndarray, np.ndarray]] = []
    used = 0
    for piece in pieces:
        if group and used + len(piece[0]) > budget:
            _emit(out, group, tokenizer)
            group, used = [], 0
        group.append(piece)
        used += len(piece[0])
    if group:
        _emit(out, group, tokenizer)
    return out


def pack_pairs(
    tokenizer: BertTokenizer,
    first: Sequence[str],
    second: Sequence[str],
    context: int,
    batch: int = 4096,
) -> Packed:
    """One sequence per pair of lines (`first[i]`, `second[i]`), the longer side cut first to
    fit `context` tokens; pairs empty on both sides are skipped."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} lines but {len(second)} translations; give one per line")
    out = Packed([], [], [])
    for start in range(0, len(first), batch):
        chunk = [
            (a, b)
            for a, b in zip(
                first[start : start + batch], second[start : start + batch], strict=True
            )
            if a.strip() or b.strip()
        ]
        if not chunk:
            continue
        texts, pairs = zip(*chunk, strict=True)
        for enc in tokenizer.encode_batch(texts, pairs, max_len=context):
            out.ids.append(np.asarray(enc.ids, dtype=np.int64))
            out.segments.append(np.asarray(enc.segments, dtype=np.int64))
            out.words.append(np.asarray([-1 if w is None else w for w in enc.words], np.int64))
    return out


def _emit(out: Packed, group: list[tuple[np.ndarray, np.ndarray]], tok: BertTokenizer) -> None:
    """Append one sequence made of `group`'s lines, split into A and B near the middle."""
    sizes = np.cumsum([len(ids) for ids, _ in group])
    split = 1  # lines before it are A, from it B; a single line is all A
    if len(group) > 1:
        split = int(np.argmin(np.abs(sizes[:-1] - sizes[-1] / 2))) + 1
    ids, segments, words = [tok.cls_id], [0], [-1]
    offset = 0  # word indices run on across lines: each word of the sequence is its own
    for i, (line_ids, line_words) in enumerate(group):
        if i == split:
            ids.append(tok.sep_id)
            segments.append(0)
            words.append(-1)
        seg = 0 if i < split else 1
        ids.extend(line_ids.tolist())
        segments.extend([seg] * len(line_ids))
        real = line_words >= 0
        shifted = np.where(real, line_words - (line_words[real].min() if real.any() else 0), -1)
        words.extend((np.where(real, shifted + offset, -1)).tolist())
        offset += int(shifted.max()) + 1 if real.any() else 0
    ids.append(tok.sep_id)
    segments.append(1 if split < len(group) else 0)
    words.append(-1)
    out.ids.append(np.asarray(ids, dtype=np.int64))
    out.segments.append(np.asarray(segments, dtype=np.int64))
    out.words.append(np.asarray(words, dtype=np.int64))


def pad_sequences(arrays: Sequence[np.ndarray], value: int) -> Tensor:
    """Right-pad 1-D arrays into one tensor. Shape: -> (B, longest) long."""
    width = max(len(a) for a in arrays)
    out = np.full((len(arrays), width), value, dtype=np.int64)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out)


__all__ = ["Packed", "pack_lines", "pack_pairs", "pad_sequences"]
