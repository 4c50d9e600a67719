"""Why batch by tokens, sorted by length? (QUESTIONS.md 23, the batching half)

    python -m experiments.batching --out docs/why     # ~6 minutes on one shared core

Multi30k's 29,000 training pairs (`--data`, default `../shared/data/multi30k`), tokenized as
the recipe does (a joint byte-level BPE of 8,000 tokens, `aiayn.tasks.translation.data`), are
cut into batches four ways at one budget of 4,096 tokens per batch:

- **sentences**: a fixed number B of sentences per batch in random order (the naive
  `DataLoader(batch_size=B, shuffle=True)`), B = the mean number of sentences of a bucketed
  token batch, so both make the same number of steps per epoch with the same mean work;
- **sentences, B for the longest**: the largest fixed B whose every batch fits the budget
  (4,096 // the longest pair), what a fixed B must be to never exceed memory;
- **tokens, random order**: batches filled in random order until n × max(S, T) would pass
  4,096 (`plan_batches(bucket=False)`);
- **tokens, bucketed**: aiayn's `TokenBatchSampler` (`plan_batches`: sorted by length, then
  filled), as the trainer batches (the paper's "batched together by approximate sequence
  length", §5.1).

For each: the fraction of the computed positions (Σ n × (S + T) over the batches) that are
padding, batches per epoch, the real target tokens per batch (what the loss is normalised by,
so its spread is the spread of gradient noise between steps) and the largest padded cost
against the budget (memory is sized for the largest batch). These are deterministic.

Then, unless `--speed-batches 0`, the real target tokens per second of forward + backward of
the recipe's model (preset `small`, `precision "auto"`) over the first `--speed-batches`
batches of each plan's epoch, the plans interleaved batch by batch so that the load of a
shared machine falls on all of them alike. That figure is noisy on a shared machine; the
padding fractions are not.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiayn.data.batching import (
    PAD_ID,
    BatchPlan,
    TokenBatchSampler,
    collate_pairs,
    padding_efficiency,
    pair_lengths,
    plan_batches,
)
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.mt import DEFAULT_DATA, small_smoke_data

MAX_TOKENS = 4096
PLANS = ("sentences", "sentences, B for the longest", "tokens, random order", "tokens, bucketed")


def load_pairs(data: Path, vocab_size: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Multi30k's training pairs as token ids (source ends with </s>, as the trainer's), and
    the vocabulary size."""
    from aiayn.data.parallel import filter_by_length, read_parallel
    from aiayn.tasks.translation.data import encode_pairs, train_tokenizers

    src, tgt = data / "train.en.gz", data / "train.de.gz"
    missing = [p.name for p in (src, tgt) if not p.is_file()]
    if missing:
        raise SystemExit(
            f"batching: {data} has no {' or '.join(missing)}; download Multi30k with "
            f"`aiayn data multi30k --out {data}` or pass --data DIR"
        )
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # the tokenizers' trainer on one core
    text, _ = read_parallel(src, tgt)
    tokenizers = train_tokenizers(src, tgt, vocab_size)
    pairs, _ = filter_by_length(encode_pairs(tokenizers, text), 127)  # the recipe's max_len 128
    return pairs, tokenizers.target.vocab_size


def sentence_plan(n: int, batch: int, order: np.ndarray) -> BatchPlan:
    """Fixed batches of `batch` examples, taken in `order` (the last one may be short)."""
    offsets = np.r_[np.arange(0, n, batch), n].astype(np.int64)
    return BatchPlan(order.astype(np.int64), offsets)


def make_plans(lengths: np.ndarray, max_tokens: int, seed: int) -> dict[str, BatchPlan]:
    """The four plans of the module doc over collated lengths (N, 2), batches in epoch order."""
    n = len(lengths)
    order = np.random.default_rng(seed).permutation(n)  # one random order, shared
    sampler = TokenBatchSampler(lengths, max_tokens, seed=seed)
    epoch = sampler.epoch_batches(0)  # the bucketed plan in its epoch's shuffled order
    bucketed = BatchPlan(
        np.fromiter((i for b in epoch for i in b), dtype=np.int64, count=n),
        np.cumsum([0] + [len(b) for b in epoch]).astype(np.int64),
    )
    unbucketed = plan_batches(lengths[order], max_tokens, bucket=False)
    return {
        "sentences": sentence_plan(n, round(n / len(bucketed)), order),
        "sentences, B for the longest": sentence_plan(
            n, max(max_tokens // int(lengths.max()), 1), order
        ),
        "tokens, random order": BatchPlan(order[unbucketed.indices], unbucketed.offsets),
        "tokens, bucketed": bucketed,
    }


def measure(plan: BatchPlan, lengths: np.ndarray, max_tokens: int) -> dict[str, Any]:
    """Padding, batch count, real target tokens per batch and the largest padded cost."""
    grouped = lengths[plan.indices]  # (N, 2) in batch order
    starts = plan.offsets[:-1]
    sentences = np.diff(plan.offsets)  # (batches,)
    target = np.add.reduceat(grouped[:, 1], starts)  # (batches,) real target tokens
    widest = np.maximum.reduceat(grouped, starts, axis=0)  # (batches, 2): (S, T)
    cost = sentences * widest.max(axis=1)  # (batches,) the budget's n × max(S, T)
    return {
        "padding_fraction": 1.0 - padding_efficiency(plan, lengths),
        "batches": len(plan),
        "sentences_per_batch": float(sentences.mean()),
        "target_tokens_mean": float(target.mean()),
        "target_tokens_cv": float(target.std() / target.mean()),
        "target_tokens_p5": float(np.percentile(target, 5)),
        "target_tokens_p95": float(np.percentile(target, 95)),
        "target_tokens": target.tolist(),
        "max_cost": int(cost.max()),
        "max_cost_over_budget": float(cost.max() / max_tokens),
    }


def throughput(
    pairs: list[tuple[list[int], list[int]]],
    plans: dict[str, BatchPlan],
    vocab_size: int,
    batches: int,
    tiny: bool,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Real target tokens/s of forward + backward over the first `batches` batches of each
    plan, interleaved (batch k of every plan, then k + 1), after one untimed batch each; and
    the setting (precision, model)."""
    from aiayn.models import presets
    from aiayn.models.encoder_decoder import EncoderDecoder
    from aiayn.train.allocator import keep_freed_memory
    from aiayn.train.loss import label_smoothed_nll
    from aiayn.train.precision import resolve_precision

    keep_freed_memory()  # as the Trainer does on a CPU: every batch shape differs
    make = presets.tiny if tiny else presets.small
    model = EncoderDecoder(make(vocab_size=vocab_size)).train()
    precision = resolve_precision("auto", torch.device("cpu"))
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def step(indices: list[int]) -> tuple[int, float]:
        batch = collate_pairs([pairs[i] for i in indices])
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=precision == "bf16"):
            logits = model(batch.src, batch.tgt_in)  # (B, T, V)
        out = label_smoothed_nll(logits, batch.tgt_out, 0.1, PAD_ID)
        (out.loss / out.n_tokens).backward()
        model.zero_grad(set_to_none=True)
        return int((batch.tgt_out != PAD_ID).sum()), time.perf_counter() - start

    for plan in plans.values():
        step(plan[0])  # warm-up: first calls allocate and pick kernels
    totals = {name: [0, 0.0] for name in plans}
    for k in range(1, batches + 1):
        for name, plan in plans.items():
            tokens, seconds = step(plan[k % len(plan)])
            totals[name][0] += tokens
            totals[name][1] += seconds
    rows = {
        name: {"target_tokens_per_s": tokens / seconds, "seconds": seconds}
        for name, (tokens, seconds) in totals.items()
    }
    return rows, {"precision": precision, "batches": batches, "preset": make.__name__}


def run(
    out: Path, seed: int, smoke: bool, data: Path, max_tokens: int, speed_batches: int
) -> dict[str, Any]:
    seed_everything(seed)
    if smoke:
        data = small_smoke_data(out / "batching_data")
        max_tokens, speed_batches = 256, min(speed_batches, 2)
    pairs, vocab_size = load_pairs(data, 1000 if smoke else 8000)
    lengths = pair_lengths(pairs)  # (N, 2): collated (S_i, T_i)
    plans = make_plans(lengths, max_tokens, seed)
    figures: dict[str, Any] = {
        "pairs": len(pairs),
        "max_tokens": max_tokens,
        "mean_length": lengths.mean(axis=0).tolist(),  # source, target (collated)
        "longest": int(lengths.max()),
        "plans": {name: measure(plan, lengths, max_tokens) for name, plan in plans.items()},
    }
    if speed_batches:
        speed, figures["speed_setup"] = throughput(
            pairs, plans, vocab_size, speed_batches, tiny=smoke
        )
        for name, row in speed.items():
            figures["plans"][name].update(row)
    figures["answer"] = answer(figures)
    plot(figures, out / "batching.png")
    return figures


def answer(figures: dict[str, Any]) -> str:
    p = figures["plans"]
    parts = [
        f"{name}: {100 * r['padding_fraction']:.1f}% padding, {r['batches']} batches, "
        f"{r['target_tokens_mean']:.0f} target tokens per batch (CV {r['target_tokens_cv']:.3f}), "
        f"largest cost {r['max_cost_over_budget']:.2f}× the budget"
        + (f", {r['target_tokens_per_s']:.0f} tok/s" if "target_tokens_per_s" in r else "")
        for name, r in p.items()
    ]
    return f"At ≤ {figures['max_tokens']:,} tokens per batch — " + "; ".join(parts) + "."


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = list(figures["plans"])
    rows = [figures["plans"][n] for n in names]
    short = [n.replace(", ", ",\n") for n in names]
    ax = axes[0]
    bars = ax.bar(short, [100 * r["padding_fraction"] for r in rows], color="C3")
    ax.bar_label(bars, fmt="%.1f%%")
    ax.set(ylabel="% of computed positions", title="padding", ylim=(0, 100))
    ax = axes[1]
    ax.boxplot([r["target_tokens"] for r in rows], showfliers=False)
    ax.set_xticks(range(1, len(short) + 1), short)
    ax.axhline(figures["max_tokens"], color="k", ls=":", label="budget (padded, larger side)")
    ax.set(ylabel="real target tokens per batch", title="work and gradient noise per step")
    ax.legend(fontsize=8)
    ax = axes[2]
    bars = ax.bar(short, [r["batches"] for r in rows], color="C0", label="batches per epoch")
    ax.bar_label(bars)
    ax.set(ylabel="batches per epoch", title=f"{figures['pairs']:,} pairs, one epoch")
    cost = ax.twinx()
    cost.plot(short, [r["max_cost_over_budget"] for r in rows], "kD", label="largest batch")
    cost.axhline(1.0, color="k", ls=":", lw=0.8)
    cost.set(ylabel="largest padded batch / budget", ylim=(0, None))
    cost.legend(loc="upper right", fontsize=8)
    for a in axes:
        a.tick_params(axis="x", labelsize=8)
    save_figure(fig, path)


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"Multi30k's folder (train.en.gz, train.de.gz; default {DEFAULT_DATA})",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=MAX_TOKENS,
        help=f"the token budget per batch (default {MAX_TOKENS}, the recipe's)",
    )
    p.add_argument("--speed-batches", type=int, default=20,
                   help="batches of each plan timed forward + backward (0: no timing)")  # fmt: skip


main = cli("batching", __doc__, run, options)

if __name__ == "__main__":
    main()
