"""An encoder-only model (BERT): the paper's encoder, read out by a head instead of a decoder.

    ids, segments → token + segment embedding + positions → LayerNorm → dropout
                  → N × Block (bidirectional) → hidden (B, T, D)
    hidden → MaskedLMHead → logits over the vocabulary at every position (pretraining)
    hidden → pool ([CLS] through the pooler, or the mean of real tokens) → dropout → classes

The same `Stack` and `Block` as the other families (`aiayn.nn`), not causal, no cross-attention;
BERT's choices are config switches (`EncoderOnlyConfig`): post-LN, erf-GELU, learned positions,
segment embeddings, a LayerNorm on the embedding sum, LayerNorm ε 1e-12. Padding (`pad_id`) is
hidden from attention, so a sequence's vectors do not depend on how much padding its batch has.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from aiayn.config import EncoderOnlyConfig
from aiayn.nn.embeddings import TokenEmbedding
from aiayn.nn.heads import CLS, MaskedLMHead, Pooler, mean_pool
from aiayn.nn.masks import padding_mask
from aiayn.nn.positional import build_positional
from aiayn.nn.stack import Stack


class EncoderOnly(nn.Module):
    """BERT: a bidirectional encoder with a masked-LM head and an optional classifier."""

    def __init__(self, config: EncoderOnlyConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        embed = TokenEmbedding(config.vocab_size, d, scale=config.scale_embeddings)
        positional = build_positional(
            config.positional, d, config.n_heads, config.max_len, config.layer.key_dim
        )
        self.encoder = Stack(
            config.layer, config.n_layers, embed, positional, name="encoder",
            embed_norm=config.embed_norm,
        )  # fmt: skip
        self.segments = nn.Embedding(config.type_vocab_size, d) if config.type_vocab_size else None
        self.mlm = MaskedLMHead(d, embed, config.layer.activation, config.layer.layer_norm_eps)
        self.pooler = Pooler(d) if config.num_labels and config.pooling == "cls" else None
        self.classifier = nn.Linear(d, config.num_labels) if config.num_labels else None
        self.classifier_dropout = nn.Dropout(config.layer.dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        """BERT's initialisation: N(0, 0.02²) for every matrix and embedding, zero biases,
        LayerNorms at identity."""
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias") and "norm" not in name:
                nn.init.zeros_(p)

    def encode(
        self,
        ids: Tensor,
        segments: Tensor | None = None,
        need_weights: bool = False,
        keep_last: slice | None = None,
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Final vectors of every position (or of the positions `keep_last` selects), which
        positions are real, and (with `need_weights`) each layer's attention weights.

        Shape: ids (B, T) long, segments (B, T) long in [0, type_vocab_size) (default: all 0)
        -> hidden (B, T, D) (with keep_last: (B, len(keep_last), D)), real (B, T) bool,
        [(B, H, T, T)] per layer.
        """
        added = None
        if self.segments is not None:
            # (B, T, D); without segments every token is in segment A: (D,) broadcasts
            added = self.segments.weight[0] if segments is None else self.segments(segments)
        elif segments is not None:
            raise ValueError("this model has no segment embeddings (type_vocab_size = 0)")
        real = ids != self.config.pad_id  # (B, T)
        mask = padding_mask(ids, self.config.pad_id)  # (B, 1, 1, T)
        hidden, weights, _ = self.encoder(
            ids, mask, need_weights=need_weights, added=added, real=real, keep_last=keep_last
        )
        return hidden, real, weights

    def forward(
        self,
        ids: Tensor,
        segments: Tensor | None = None,
        only: Tensor | None = None,
        head: Literal["mlm", "classify"] = "mlm",
    ) -> Tensor:
        """Masked-LM logits at every position, or at the positions `only` selects (pretraining
        predicts ~15% of them: projecting the rest onto the vocabulary would be wasted); with
        `head="classify"`, the class logits of each sequence (`classify`). One entry point
        for both, so that a wrapper's forward (DDP's gradient hooks) sees either task.

        Shape: ids (B, T), segments (B, T) | None, only (B, T) bool | None
        -> logits (B, T, V), or (N, V) for the N positions `only` selects (row-major order),
        or (B, num_labels) for `head="classify"`.
        """
        if head == "classify":
            return self.classify(ids, segments)
        hidden, _, _ = self.encode(ids, segments)
        return self.mlm(hidden if only is None else hidden[only])

    def pool(self, ids: Tensor, segments: Tensor | None = None) -> Tensor:
        """One vector per sequence: the pooled [CLS] vector, or the mean of the real tokens.

        Shape: ids (B, T), segments (B, T) | None -> (B, D).
        """
        if self.config.pooling == "mean":
            hidden, real, _ = self.encode(ids, segments)
            return mean_pool(hidden, real)
        if self.pooler is None:
            raise ValueError("pooling 'cls' needs the pooler of a classifier (num_labels > 0)")
        # the pooler reads [CLS] alone: only it need leave the last layer
        hidden, _, _ = self.encode(ids, segments, keep_last=CLS)  # (B, 1, D)
        return self.pooler(hidden)

    def classify(self, ids: Tensor, segments: Tensor | None = None) -> Tensor:
        """Class logits of each sequence.

        Shape: ids (B, T), segments (B, T) | None -> logits (B, num_labels).
        """
        if self.classifier is None:
            raise ValueError("this model has no classification head (num_labels = 0)")
        return self.classifier(self.classifier_dropout(self.pool(ids, segments)))

    def num_parameters(self) -> int:
        """Unique parameters (the tied MLM matrix counts once)."""
        return sum(p.numel() for p in self.parameters())


__all__ = ["EncoderOnly"]
