"""Attention heatmaps: which source tokens each target token looked at."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tokenizers import TokenizerPair
from aiayn.visualize.figure import save_figure


@torch.no_grad()
def cross_attention(
    model: EncoderDecoder, tokenizers: TokenizerPair, source: str, translation: str, layer: int = -1
) -> tuple[Tensor, list[str], list[str]]:
    """Cross-attention weights of `layer`, averaged over heads, for a sentence pair.

    The translation is fed with teacher forcing, so row i shows where the decoder looked when
    it produced target token i. Returns weights (T, S), target tokens (T), source tokens (S).
    """
    src_ids = tokenizers.source.encode(source, add_eos=True)
    tgt_ids = tokenizers.target.encode(translation, add_bos=True, add_eos=False)
    model.eval()
    device = next(model.parameters()).device
    maps = model.attention_maps(
        torch.tensor([src_ids], device=device), torch.tensor([tgt_ids], device=device)
    )
    weights = maps.decoder_cross[layer][0].mean(dim=0)  # (T, S): average of the heads
    # Row i is the step that *predicts* target token i+1; label rows by the predicted token.
    out_ids = [*tgt_ids[1:], tokenizers.target.eos_id]
    src_tokens = [_readable(tokenizers.source, i) for i in src_ids]
    tgt_tokens = [_readable(tokenizers.target, i) for i in out_ids]
    return weights.float().cpu(), tgt_tokens, src_tokens


def plot_attention(
    weights: Tensor,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | os.PathLike,
    title: str = "cross-attention",
) -> Path:
    """Save a heatmap of `weights` (rows × cols) with token labels as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows, cols = weights.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * cols + 2), max(3.0, 0.4 * rows + 1.5)))
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, aspect="auto")
    ax.set_xticks(range(cols), labels=list(col_labels), rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(rows), labels=list(row_labels), fontsize=9)
    ax.set_xlabel("source token (attended to)")
    ax.set_ylabel("target token (being predicted)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save_figure(fig, path)


def _readable(tokenizer, token_id: int) -> str:
    """A token as text ("ü", not its byte-level spelling "Ã¼"); a leading space shows as '▁'.

    A token holding part of a multi-byte character cannot be shown alone; it keeps its raw form.
    """
    text = tokenizer.decode([token_id], skip_special=False)
    if not text or "\ufffd" in text:
        return tokenizer.id_to_token(token_id) or "?"
    return "▁" + text[1:] if text.startswith(" ") else text
