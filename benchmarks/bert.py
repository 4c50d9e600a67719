"""Encoder-only (BERT) throughput: aiayn's `EncoderOnly` against HF `BertForMaskedLM` /
`BertForSequenceClassification` of the same shape.

Both contenders are BERT blocks (post-LN, erf-GELU, learned positions, segment embeddings,
LayerNorm ε 1e-12, dropout 0.1) with random weights:
  aiayn    `EncoderOnly` from the bert-* presets
  hf_bert  `BertForMaskedLM(BertConfig(...))` / `BertForSequenceClassification`, its default
           attention (SDPA)

Training: one masked-LM step — forward, cross-entropy at the 15% selected positions (fp32
logits), backward, fused AdamW — on the same batch of full `seq_len` sequences with the same
masks, fp32 or bf16 autocast. aiayn projects only the selected positions onto the vocabulary
(`EncoderOnly(only=…)`), HF every position (its `labels=` path): part of what is measured.
Tokens/s counts every input token. Classification: sentences/s of inference on batches of
`classify_batch` sequences of `seq_len` tokens (no padding), fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.models import EncoderOnly, presets
from aiayn.models.info import estimate_encoder_flops
from benchmarks.measure import PeakMemory, autocast_for, median_seconds


@dataclass(frozen=True)
class BertDims:
    """Model and workload sizes of one BERT benchmark row."""

    preset: str
    vocab: int
    seq_len: int
    batch: int  # training: sequences per step
    classify_batch: int = 64

    def config(self, num_labels: int = 0):
        return presets.get(self.preset, vocab_size=self.vocab, max_len=max(self.seq_len, 16),
                           num_labels=num_labels)  # fmt: skip


BERT_SIZES = {
    # Turc et al.'s BERT-Mini (4 layers, d 256): BERT's 128-token first pretraining phase.
    "mini": BertDims("bert-mini", 30522, 128, batch=32),
    # BERT-base (109.5M parameters with the MLM head); a batch a CPU steps through in seconds.
    "base": BertDims("bert-base", 30522, 128, batch=4, classify_batch=64),
    # Seconds-long smoke run for CI.
    "tiny": BertDims("bert-tiny", 200, 16, batch=2, classify_batch=4),
}


def build(contender: str, dims: BertDims, num_labels: int = 0) -> nn.Module:
    torch.manual_seed(0)
    if contender == "aiayn":
        return EncoderOnly(dims.config(num_labels))
    if contender == "hf_bert":
        from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

        cfg = dims.config()
        hf = BertConfig(
            vocab_size=dims.vocab, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
            num_attention_heads=cfg.n_heads, intermediate_size=cfg.layer.d_ff,
            max_position_embeddings=cfg.max_len, num_labels=max(num_labels, 2),
        )  # fmt: skip
        return BertForSequenceClassification(hf) if num_labels else BertForMaskedLM(hf)
    raise ValueError(f"unknown contender {contender!r}")


def masked_batch(dims: BertDims, device: str) -> tuple[Tensor, Tensor, Tensor]:
    """ids, segments and MLM targets (-100 where not selected), the same for both."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, dims.vocab, (dims.batch, dims.seq_len), generator=gen)
    segments = torch.zeros_like(ids)
    segments[:, dims.seq_len // 2 :] = 1
    selected = torch.rand(ids.shape, generator=gen) < 0.15
    targets = torch.where(selected, ids, torch.full_like(ids, -100))
    inputs = ids.masked_fill(selected, 4)  # [MASK]
    return inputs.to(device), segments.to(device), targets.to(device)


def bert_train_rate(
    contender: str, size: str, precision: str, device: str, warmup: int, reps: int
) -> dict:
    """Masked-LM training tokens/s (every input token), MFU numerator and peak memory."""
    dims = BERT_SIZES[size]
    model = build(contender, dims).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    inputs, segments, targets = masked_batch(dims, device)
    selected = targets != -100
    autocast = autocast_for(precision, device)

    def step() -> None:
        with autocast:
            if contender == "aiayn":
                logits = model(inputs, segments, only=selected)  # (N, V)
            else:
                logits = model(input_ids=inputs, token_type_ids=segments).logits[selected]
        loss = F.cross_entropy(logits.float(), targets[selected])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with PeakMemory(device) as mem:
        seconds = median_seconds(step, warmup, reps, device)
    flops = estimate_encoder_flops(dims.config(), dims.seq_len).forward  # head at every position
    return {
        "tokens_per_s": round(dims.batch * dims.seq_len / seconds, 1),
        "step_ms": round(seconds * 1e3, 2),
        "flops_per_s": 3 * flops * dims.batch / seconds,
        "peak_mem_mib": mem.mib,
        "params": sum(p.numel() for p in model.parameters()),
    }


def bert_classify_rate(contender: str, size: str, device: str, warmup: int, reps: int) -> dict:
    """Classification inference: sentences/s on batches of `classify_batch` sequences."""
    dims = BERT_SIZES[size]
    model = build(contender, dims, num_labels=2).to(device).eval()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(5, dims.vocab, (dims.classify_batch, dims.seq_len), generator=gen)
    ids, segments = ids.to(device), torch.zeros_like(ids).to(device)

    @torch.inference_mode()
    def run() -> Tensor:
        if contender == "aiayn":
            return model.classify(ids, segments)
        return model(input_ids=ids, token_type_ids=segments).logits

    with PeakMemory(device) as mem:
        seconds = median_seconds(run, warmup, reps, device)
    return {
        "sentences_per_s": round(dims.classify_batch / seconds, 1),
        "tokens_per_s": round(dims.classify_batch * dims.seq_len / seconds, 1),
        "run_ms": round(seconds * 1e3, 2),
        "peak_mem_mib": mem.mib,
    }
