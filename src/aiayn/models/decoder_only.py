"""A decoder-only language model (GPT): the paper's decoder without cross-attention.

    ids → token embedding + positions → dropout → N × causal Block → final LN → logits

The same `Stack` and `Block` as the encoder-decoder (`aiayn.nn`), with `causal=True` and no
cross-attention: each position predicts the next token from itself and the positions before
it. GPT-2's choices are config switches (`DecoderOnlyConfig`): pre-LN, GELU (tanh form),
learned positions, biases, an output layer tied to the input embedding, no √d_model scale.

Decoding follows the protocol of `aiayn.decode.protocol`: `start(prompts)` lays out a batch of
prompts padded on the LEFT (so every row's last prompt token sits in the last column and the
first step's logits are each row's next token), the first `step` feeds the prompts themselves
(one pass fills the KV cache), later steps one token per row. Padding is hidden from attention
and each row's positions start at its first real token, so a prompt decodes the same alone as
in a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aiayn.config import DecoderOnlyConfig
from aiayn.nn.embeddings import OutputProjection, TokenEmbedding
from aiayn.nn.kv_cache import DecoderCache
from aiayn.nn.masks import causal_mask, combine
from aiayn.nn.positional import build_positional
from aiayn.nn.stack import Stack


@dataclass
class DecoderOnlyState:
    """Decoding state: the KV cache and each row's left padding (cache slots 0 … n_pad - 1 of
    row b are padding, every later slot a real token)."""

    cache: DecoderCache
    n_pad: Tensor  # (B,) left padding of each row's prompt
    padded: bool  # some prompt was padded: attention must hide the padding slots

    def reorder(self, index: Tensor, same_inputs: bool = False) -> None:
        """Keep rows `index` (B',); there is no input-only state to spare (`same_inputs`)."""
        self.cache.reorder(index, cross=False)
        self.n_pad = self.n_pad.index_select(0, index)


class DecoderOnly(nn.Module):
    """GPT: a stack of causal self-attention blocks and a (tied) output layer."""

    def __init__(self, config: DecoderOnlyConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        embed = TokenEmbedding(config.vocab_size, d, scale=config.scale_embeddings)
        positional = build_positional(
            config.positional, d, config.n_heads, config.max_len, config.layer.key_dim
        )
        self.decoder = Stack(
            config.layer, config.n_layers, embed, positional, causal=True, name="decoder"
        )
        tied = embed if config.tie_embeddings else None
        self.generator = OutputProjection(d, config.vocab_size, tied_to=tied)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02²) for every matrix and embedding, zero biases, and
        the projections that write into the residual stream (W_O, W_2) scaled by 1/√(2N), so
        the stream's variance does not grow with depth (GPT-2 §2.3; nanoGPT)."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02
                if name.endswith(("w_o.weight", "w_2.weight")):
                    std /= math.sqrt(2 * self.config.n_layers)
                nn.init.normal_(p, mean=0.0, std=std)
            elif name.endswith("bias") and ".norm" not in name and "res_" not in name:
                nn.init.zeros_(p)

    # --- training ---------------------------------------------------------------------------

    def forward(self, ids: Tensor) -> Tensor:
        """Next-token logits at every position (teacher forcing).

        Shape: ids (B, T) long (no padding: contiguous text) -> logits (B, T, V).
        """
        hidden, _, _ = self.decoder(ids)  # no mask: the causal blocks apply causality
        return self.generator(hidden)

    def attention_maps(self, ids: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and every layer's attention weights (math path).

        Shape: ids (B, T) -> logits (B, T, V), [(B, H, T, T)] per layer.
        """
        hidden, weights, _ = self.decoder(ids, need_weights=True)
        return self.generator(hidden), weights

    # --- the decoding protocol (aiayn.decode.protocol) ----------------------------------------

    def start(self, inputs: Tensor, capacity: int = 64) -> DecoderOnlyState:
        """Lay out a batch of prompts padded on the left with `pad_id` (each row needs at least
        one real token). Feed the same prompts to the first `step`. Only each row's leading
        run of pad_id is padding (so a prompt must not begin with pad_id); later it is a token.

        Shape: inputs (B, P) long.
        """
        real = inputs != self.config.pad_id  # (B, P)
        if not bool(real.any(dim=1).all()):
            raise ValueError("every prompt needs at least one token (e.g. the start token)")
        n_pad = real.int().argmax(dim=1)  # (B,) index of the first real token
        cache = DecoderCache(self.config.n_layers, capacity, cross=False)
        return DecoderOnlyState(cache, n_pad, padded=bool(n_pad.any()))

    def step(self, state: DecoderOnlyState, tokens: Tensor) -> Tensor:
        """Shape: tokens (B, T) long (the prompts first, then one token per row)
        -> next-token logits (B, V)."""
        T = tokens.shape[1]
        past = state.cache.length
        mask, offset = None, past
        if state.padded:  # left padding: hide it, and start positions after it
            # Only the leading run of pad_id is padding: the id later in a prompt, or fed back
            # after being generated, is an ordinary token (full forward attends to it too).
            slots = torch.arange(past + T, device=tokens.device)  # (past + T,) cache slots
            mask = (slots >= state.n_pad[:, None])[:, None, None, :]  # (B, 1, 1, past + T)
            offset = past - state.n_pad  # (B,) position of each row's first new token
        # Several new tokens after a past, or with padding, need a causal mask (bottom-right
        # aligned); without either the blocks apply causality themselves, and a windowed
        # model's band supplies it. One new token may see every cached one.
        if T > 1 and mask is not None:
            # A padding query sees itself, so no row of the softmax is empty (NaN in the math
            # path would reach real positions through 0 · NaN values in the next layer).
            own = (
                torch.arange(past + T, device=tokens.device)
                == past + torch.arange(T, device=tokens.device)[:, None]
            )  # (T, past + T): query i's own key
            mask = mask | own
            if self.config.layer.attention_window is None:
                mask = combine(mask, causal_mask(T, past + T, device=tokens.device))
        elif T > 1 and past > 0 and self.config.layer.attention_window is None:
            mask = causal_mask(T, past + T, device=tokens.device)
        hidden, _, _ = self.decoder(tokens, mask, cache=state.cache, offset=offset)
        return self.generator(hidden[:, -1:])[:, -1]  # (B, V): only the last position

    def num_parameters(self) -> int:
        """Unique parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())


__all__ = ["DecoderOnly", "DecoderOnlyState"]
