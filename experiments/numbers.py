"""Training runs on the number-words task (`aiayn demo`'s data: English number words to German,
test numbers never seen in training), shared by the experiments that compare model variants
at one small, fixed budget."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aiayn.config import ModelConfig
from aiayn.data.batching import Batch, collate_pairs
from aiayn.data.number_words import make_splits, write_splits
from aiayn.evaluate import exact_match
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tasks.translation import TranslationConfig, train_translation
from aiayn.tokenizers import TokenizerPair
from aiayn.train.config import TrainConfig
from aiayn.translator import translate_sentences
from aiayn.visualize.curves import read_metrics


def fresh_data(runs: Path, smoke: bool, seed: int) -> Path:
    """Empty `runs` (an experiment's own scratch) and write the splits in `runs/data`."""
    shutil.rmtree(runs, ignore_errors=True)
    data = runs / "data"
    write_splits(make_splits(300 if smoke else 20_000, 100 if smoke else 300, 8, seed=seed), data)
    return data


def small_model(layers: int = 2, **fields: Any) -> ModelConfig:
    """An encoder-decoder of d_model 128 for the 400-token number-words vocabulary."""
    return ModelConfig.create(
        d_model=128, n_heads=4, d_ff=512, n_encoder_layers=layers, n_decoder_layers=layers,
        dropout=0.1, max_len=64, src_vocab_size=400, tgt_vocab_size=400, **fields,
    )  # fmt: skip


def train_numbers(data: Path, out: Path, model: ModelConfig, steps: int, seed: int,
                  alter: Callable[[EncoderDecoder], None] | None = None,
                  **train: Any) -> dict[str, Any]:  # fmt: skip
    """Train `model` for `steps` steps (peak lr 2e-3, cosine, fp32 unless `train` says
    otherwise); its validation curve (loss, greedy exact match) and training losses.
    `alter` changes the built model in place before training (a variant the config lacks)."""
    fields = dict(
        schedule="cosine", peak_lr=2e-3, warmup_steps=max(steps // 6, 1), max_steps=steps,
        valid_every=max(steps // 10, 1), log_every=max(steps // 20, 1), keep_last=1,
        best_metric="loss", clip_norm=0.0, precision="fp32", device="cpu", seed=seed,
    )  # fmt: skip
    fields.update(train)
    task = TranslationConfig(vocab_size=400, max_len=64, max_tokens=3000, valid_beam=1)
    result = train_translation(
        data / "train.en", data / "train.de", data / "valid.en", data / "valid.de", out,
        model, TrainConfig(**fields), task, progress=False, alter=alter,
    )  # fmt: skip
    valid = read_metrics(out / "metrics.jsonl", "valid")
    return {
        "valid": [
            {"step": r["step"], "loss": r["loss"], "exact_match": r.get("exact_match")}
            for r in valid
        ],
        "train_loss": [r["loss"] for r in read_metrics(out / "metrics.jsonl", "train")],
        "best_valid_loss": result.best,
    }


def last_valid(run: dict[str, Any]) -> str:
    """'loss (exact match)' at the last validation, for an experiment's answer line."""
    last = run["valid"][-1] if run["valid"] else {}
    em = last.get("exact_match")
    return f"{last.get('loss', float('nan')):.2f}" + (f" ({em:.1%})" if em is not None else "")


def trained_model(data: Path, out: Path, model: ModelConfig, steps: int, seed: int,
                  alter: Callable[[EncoderDecoder], None] | None = None,
                  ) -> tuple[EncoderDecoder, TokenizerPair, dict[str, Any]]:  # fmt: skip
    """`train_numbers`, keeping the model as trained (in eval mode) and its tokenizers."""
    kept: list[EncoderDecoder] = []

    def keep(m: EncoderDecoder) -> None:
        if alter is not None:
            alter(m)
        kept.append(m)

    run = train_numbers(data, out, model, steps, seed, alter=keep)
    return kept[0].eval(), TokenizerPair.load(out), run


def read_split(data: Path, split: str) -> tuple[list[str], list[str]]:
    """The English sources and German references of `split` (train, valid, test)."""
    src = (data / f"{split}.en").read_text(encoding="utf-8").splitlines()
    ref = (data / f"{split}.de").read_text(encoding="utf-8").splitlines()
    return src, ref


def greedy_exact_match(model: nn.Module, tokenizers: TokenizerPair, src: list[str],
                       ref: list[str]) -> float:  # fmt: skip
    """The fraction of `src` whose greedy translation is exactly `ref`."""
    return exact_match(translate_sentences(model, tokenizers, src, beam=1), ref)


def teacher_batch(tokenizers: TokenizerPair, src: list[str], ref: list[str]) -> Batch:
    """The pairs as one padded, teacher-forced batch: src (B, S), tgt_in and tgt_out (B, T)."""
    s, t = tokenizers.source, tokenizers.target
    pairs = [(s.encode(x), t.encode(y, add_eos=False)) for x, y in zip(src, ref, strict=True)]
    return collate_pairs(pairs, pad_id=s.pad_id, bos_id=t.bos_id, eos_id=t.eos_id)


@torch.no_grad()
def batch_loss(model: EncoderDecoder, batch: Batch) -> float:
    """Mean cross-entropy per real target token (nats), teacher-forced, no smoothing."""
    logits = model(batch.src, batch.tgt_in)  # (B, T, V)
    pad = model.config.pad_id
    return float(F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=pad))


def ffn_gradients(model: EncoderDecoder, seed: int, batches: int = 5) -> dict[str, list[float]]:
    """‖∂L/∂W_2‖ of each encoder and decoder layer's feed-forward for a cross-entropy on random
    tokens (the loss a first step sees), averaged over `batches` batches of 32 × 20."""
    model.train()
    data = torch.Generator().manual_seed(seed)
    sums = {"encoder": [0.0] * len(model.encoder.layers),
            "decoder": [0.0] * len(model.decoder.layers)}  # fmt: skip
    for _ in range(batches):
        src = torch.randint(4, 400, (32, 20), generator=data)  # (B, S)
        tgt = torch.randint(4, 400, (32, 21), generator=data)  # (B, T+1)
        logits = model(src, tgt[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten())
        model.zero_grad(set_to_none=True)
        loss.backward()
        for stack in sums:
            for i, layer in enumerate(getattr(model, stack).layers):
                sums[stack][i] += float(layer.ffn.w_2.weight.grad.norm()) / batches
    return sums


def valid_loss_panel(ax: Any, runs: dict[str, dict[str, Any]], title: str,
                     styles: tuple[str, ...] = ("o-", "s--", "^-", "v--")) -> None:  # fmt: skip
    """Plot each run's validation loss curve on `ax` (log scale), labelled by its key."""
    for (label, run), style in zip(runs.items(), styles, strict=False):
        steps, losses = [v["step"] for v in run["valid"]], [v["loss"] for v in run["valid"]]
        ax.plot(steps, losses, style, label=label)
    ax.set(xlabel="step", ylabel="validation loss (nats/token)", yscale="log", title=title)
    ax.legend(fontsize=8)


def trained_baseline(runs: Path, smoke: bool, seed: int, steps: int) -> tuple[
    EncoderDecoder, TokenizerPair, dict[str, Any], list[str], list[str]
]:  # fmt: skip
    """Fresh splits in `runs`, the small model trained on them for `steps` steps (in
    `runs/model`), its tokenizers and curve, and the validation sources and references."""
    data = fresh_data(runs, smoke, seed)
    model, tokenizers, curve = trained_model(data, runs / "model", small_model(), steps, seed)
    return model, tokenizers, curve, *read_split(data, "valid")
