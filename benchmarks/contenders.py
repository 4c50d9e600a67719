"""The models compared, built with the same dimensions: aiayn, HF Marian, torch.nn.Transformer.

Every builder returns an `nn.Module` in train mode and a `forward(src, tgt_in) -> logits`
closure, so the training benchmark runs the same loop over each:
    src (B, S) long, tgt_in (B, T) long -> logits (B, T, V).
All three are post-LN encoder-decoders with ReLU feed-forwards, sinusoidal positions,
embeddings scaled by √d_model and one matrix shared by both embeddings and the output layer
(the paper's set-up), dropout 0.1 on the same places.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder
from aiayn.nn.dropout import Dropout
from aiayn.nn.positional import sinusoid_table

PAD, BOS, EOS = 0, 1, 2
Forward = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Dims:
    """Model and workload sizes of one benchmark row."""

    layers: int  # encoder layers = decoder layers
    d_model: int
    heads: int
    d_ff: int
    vocab: int  # shared source/target vocabulary
    batch: int  # training: sentences per step
    src_len: int  # training: tokens per source sentence (no padding: equal work for all)
    tgt_len: int  # training: target tokens per sentence
    translate_batch: int = 64
    translate_src_len: int = 20
    translate_out_len: int = 32  # every contender outputs exactly this many tokens

    def model_config(self, **overrides) -> ModelConfig:
        fields = dict(
            src_vocab_size=self.vocab, tgt_vocab_size=self.vocab, d_model=self.d_model,
            n_heads=self.heads, d_ff=self.d_ff, n_encoder_layers=self.layers,
            n_decoder_layers=self.layers, dropout=0.1, max_len=1024, pad_id=PAD,
        )  # fmt: skip
        return ModelConfig.create(**{**fields, **overrides})


SIZES = {
    # Multi30k-sized: 3+3 layers, d 256, 8 heads, d_ff 1024, 8k shared vocabulary, ~3k target
    # tokens per step (the recipe's batches: 4,096 tokens of source + target).
    "multi30k": Dims(3, 256, 8, 1024, 8000, batch=200, src_len=15, tgt_len=16),
    # The paper's base model (§6.1) with its 37k shared vocabulary.
    "base": Dims(6, 512, 8, 2048, 37000, batch=100, src_len=30, tgt_len=32),
    # Seconds-long smoke run for CI.
    "tiny": Dims(
        1,
        32,
        2,
        64,
        100,
        batch=4,
        src_len=6,
        tgt_len=5,
        translate_batch=4,
        translate_src_len=6,
        translate_out_len=4,
    ),
}


def aiayn_model(dims: Dims, attention_impl: str = "auto") -> tuple[nn.Module, Forward]:
    model = EncoderDecoder(dims.model_config(attention_impl=attention_impl)).train()
    return model, model


def aiayn_torch_dropout_model(dims: Dims) -> tuple[nn.Module, Forward]:
    """aiayn with `torch.nn.Dropout` in place of `aiayn.nn.Dropout`: what the CPU mask buys."""
    model = with_torch_dropout(aiayn_model(dims)[0])
    return model, model


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """`model` with every `aiayn.nn.Dropout` replaced by a `torch.nn.Dropout` of the same p."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    return model


def marian_model(dims: Dims) -> tuple[nn.Module, Forward]:
    """HF transformers' MarianMTModel, random init, as `MarianMTModel(MarianConfig(...))`."""
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=dims.vocab, d_model=dims.d_model, encoder_layers=dims.layers,
        decoder_layers=dims.layers, encoder_attention_heads=dims.heads,
        decoder_attention_heads=dims.heads, encoder_ffn_dim=dims.d_ff, decoder_ffn_dim=dims.d_ff,
        activation_function="relu", dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
        scale_embedding=True, max_position_embeddings=1024, pad_token_id=PAD,
        bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS,
        forced_eos_token_id=None, share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )  # fmt: skip
    model = MarianMTModel(config).train()

    def forward(src: Tensor, tgt_in: Tensor) -> Tensor:
        return model(input_ids=src, attention_mask=src != PAD, decoder_input_ids=tgt_in).logits

    return model, forward


class TorchTransformer(nn.Module):
    """`torch.nn.Transformer` with the paper's embeddings, positions and tied output layer."""

    def __init__(self, dims: Dims) -> None:
        super().__init__()
        self.scale = math.sqrt(dims.d_model)
        self.embed = nn.Embedding(dims.vocab, dims.d_model, padding_idx=PAD)
        pe = sinusoid_table(1024, dims.d_model)  # (1024, D): the same positions as aiayn's
        self.register_buffer("pe", pe, persistent=False)
        self.dropout = nn.Dropout(0.1)
        self.transformer = nn.Transformer(
            dims.d_model, dims.heads, dims.layers, dims.layers, dims.d_ff, dropout=0.1,
            batch_first=True,
        )  # fmt: skip

    def embed_positions(self, ids: Tensor) -> Tensor:
        return self.dropout(self.embed(ids) * self.scale + self.pe[: ids.shape[1]])  # (B, T, D)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        T = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tgt_in.device)
        hidden = self.transformer(
            self.embed_positions(src), self.embed_positions(tgt_in), tgt_mask=causal,
            src_key_padding_mask=src == PAD, memory_key_padding_mask=src == PAD,
            tgt_is_causal=True,
        )  # fmt: skip
        return hidden @ self.embed.weight.T  # (B, T, V): tied output layer


def torch_model(dims: Dims) -> tuple[nn.Module, Forward]:
    model = TorchTransformer(dims).train()
    return model, model


TRAINING_CONTENDERS: dict[str, Callable[[Dims], tuple[nn.Module, Forward]]] = {
    "aiayn": aiayn_model,
    "aiayn_sdpa": lambda dims: aiayn_model(dims, "sdpa"),
    "aiayn_math": lambda dims: aiayn_model(dims, "math"),
    "aiayn_torch_dropout": aiayn_torch_dropout_model,
    "hf_marian": marian_model,
    "torch_transformer": torch_model,
}


def marian_from_aiayn(model: EncoderDecoder) -> nn.Module:
    """HF transformers' MarianMTModel holding `model`'s weights, in eval mode: the same
    network, so `generate` on it is the HF contender of the real-sentence benchmark.

    Marian is the same architecture (post-LN, ReLU, embeddings × √d_model, one tied matrix,
    sinusoidal positions from 0); what differs is filled in: its sinusoids are laid out
    [sin…, cos…], so our interleaved table (§3.5) is written over them, and its output layer
    adds `final_logits_bias`, left at zero. Only the paper's set-up converts (post-LN, ReLU,
    sinusoidal, all three matrices tied, d_k = d_model / h, LayerNorm)."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    cfg = model.config
    layer = cfg.layer
    paper = (
        not layer.norm_first and layer.activation == "relu" and cfg.positional == "sinusoidal"
        and cfg.tie_embeddings == "all" and layer.norm == "layer" and layer.bias
        and layer.d_k in (None, layer.head_dim) and layer.attention_window is None
    )  # fmt: skip
    if not paper:
        raise ValueError("only the paper's encoder-decoder set-up converts to MarianMTModel")
    config = MarianConfig(
        vocab_size=cfg.tgt_vocab_size, d_model=cfg.d_model, encoder_layers=cfg.n_encoder_layers,
        decoder_layers=cfg.n_decoder_layers, encoder_attention_heads=cfg.n_heads,
        decoder_attention_heads=cfg.n_heads, encoder_ffn_dim=layer.d_ff,
        decoder_ffn_dim=layer.d_ff, activation_function="relu", dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True,
        max_position_embeddings=cfg.max_len, pad_token_id=cfg.pad_id, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
    )  # fmt: skip
    hf = MarianMTModel(config).eval()
    eps = float(layer.layer_norm_eps)

    def linear(dst: nn.Linear, src: nn.Linear) -> None:
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)

    def norm(dst: nn.LayerNorm, src: nn.LayerNorm) -> None:
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)
        dst.eps = eps

    def attention(dst: nn.Module, src: nn.Module) -> None:
        for d, s in (("q_proj", "w_q"), ("k_proj", "w_k"), ("v_proj", "w_v"), ("out_proj", "w_o")):
            linear(getattr(dst, d), getattr(src, s))

    table = sinusoid_table(cfg.max_len, cfg.d_model)  # (max_len, D), sin/cos interleaved
    with torch.no_grad():
        hf.model.shared.weight.copy_(model.encoder.embed.weight)  # tied: one matrix for all
        for side, ours in ((hf.model.encoder, model.encoder), (hf.model.decoder, model.decoder)):
            side.embed_positions.weight.copy_(table)
            for dst, src in zip(side.layers, ours.layers, strict=True):
                attention(dst.self_attn, src.self_attn)
                norm(dst.self_attn_layer_norm, src.res_self.norm)
                if hasattr(dst, "encoder_attn"):
                    attention(dst.encoder_attn, src.cross_attn)
                    norm(dst.encoder_attn_layer_norm, src.res_cross.norm)
                linear(dst.fc1, src.ffn.w_1)
                linear(dst.fc2, src.ffn.w_2)
                norm(dst.final_layer_norm, src.res_ffn.norm)
        hf.final_logits_bias.zero_()
    return hf
