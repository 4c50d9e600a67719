"""Data: parallel text in, token-bounded batches of padded id tensors out."""

from aiayn.data.batching import (
    Batch,
    BatchPlan,
    TokenBatchSampler,
    collate_pairs,
    padding_efficiency,
    pair_lengths,
    plan_batches,
)
from aiayn.data.multi30k import DEFAULT_BASE_URL, download_multi30k
from aiayn.data.number_words import NumberSplits, english, german, make_splits, write_splits
from aiayn.data.parallel import (
    ReadStats,
    filter_by_length,
    iter_parallel,
    iter_tsv,
    read_lines,
    read_parallel,
    read_tsv,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "Batch",
    "BatchPlan",
    "NumberSplits",
    "ReadStats",
    "TokenBatchSampler",
    "collate_pairs",
    "download_multi30k",
    "english",
    "filter_by_length",
    "german",
    "iter_parallel",
    "iter_tsv",
    "make_splits",
    "padding_efficiency",
    "pair_lengths",
    "plan_batches",
    "read_lines",
    "read_parallel",
    "read_tsv",
    "write_splits",
]
