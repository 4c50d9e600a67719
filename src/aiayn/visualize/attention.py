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


def plot_attention_grid(
    weights: Tensor,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | os.PathLike,
    title: str = "attention",
) -> Path:
    """Save every layer's and head's map as one PNG: layers down, heads across, each panel
    queries (rows) × keys (columns) on a shared 0…1 scale.

    Shape: weights (L, H, T, S). Token labels are drawn on the left column and bottom row only,
    and left out when there are too many to read.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H, T, S = weights.shape
    side = min(2.6, max(1.2, 0.16 * max(T, S)))  # inches per panel
    fig, axes = plt.subplots(L, H, figsize=(side * H + 1.2, side * L + 0.8), squeeze=False)
    show_rows, show_cols = T <= 40, S <= 40
    for layer in range(L):
        for head in range(H):
            ax = axes[layer][head]
            ax.imshow(weights[layer, head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0,
                      aspect="auto", interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head + 1}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer + 1}", fontsize=8)
                if show_rows:
                    ax.set_yticks(range(T), labels=list(row_labels), fontsize=5)
            if layer == L - 1 and show_cols:
                ax.set_xticks(range(S), labels=list(col_labels), rotation=90, fontsize=5)
    fig.suptitle(title, fontsize=10)
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
