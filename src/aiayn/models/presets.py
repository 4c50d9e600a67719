"""Named model sizes. Each is a function returning a `ModelConfig`; overrides are keywords.

presets.base(vocab_size=37000)           # the paper's base model, ~63M parameters
presets.get("tiny", src_vocab_size=100, tgt_vocab_size=100, tie_embeddings="decoder")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiayn.config import DecoderOnlyConfig, EncoderOnlyConfig, ModelConfig, VisionConfig
from aiayn.errors import ConfigError


def tiny(vocab_size: int = 8000, **overrides: Any) -> ModelConfig:
    """2+2 layers, d_model 128: seconds-long tests and toy tasks on a laptop CPU."""
    return _make(vocab_size, dict(d_model=128, n_heads=4, d_ff=512, n_encoder_layers=2,
                                  n_decoder_layers=2, dropout=0.1), overrides)  # fmt: skip


def small(vocab_size: int = 8000, **overrides: Any) -> ModelConfig:
    """3+3 layers, d_model 256, 8 heads, d_ff 1024: Multi30k-sized, trains on 2 CPU cores."""
    return _make(vocab_size, dict(d_model=256, n_heads=8, d_ff=1024, n_encoder_layers=3,
                                  n_decoder_layers=3, dropout=0.1), overrides)  # fmt: skip


def base(vocab_size: int = 37000, **overrides: Any) -> ModelConfig:
    """The paper's base model (Table 3): N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1."""
    return _make(vocab_size, dict(d_model=512, n_heads=8, d_ff=2048, n_encoder_layers=6,
                                  n_decoder_layers=6, dropout=0.1), overrides)  # fmt: skip


def big(vocab_size: int = 37000, **overrides: Any) -> ModelConfig:
    """The paper's big model (Table 3): N=6, d_model=1024, d_ff=4096, h=16, P_drop=0.3 (EN-DE)."""
    return _make(vocab_size, dict(d_model=1024, n_heads=16, d_ff=4096, n_encoder_layers=6,
                                  n_decoder_layers=6, dropout=0.3), overrides)  # fmt: skip


# --- decoder-only language models (GPT) -----------------------------------------------------


def gpt_mini(vocab_size: int = 8000, **overrides: Any) -> DecoderOnlyConfig:
    """4 layers, d_model 256, 4 heads, context 256: a few M parameters, trains in minutes on a
    laptop CPU (character-level Tiny Shakespeare)."""
    return _make_lm(vocab_size, dict(n_layers=4, d_model=256, n_heads=4, d_ff=1024,
                                     max_len=256, dropout=0.1), overrides)  # fmt: skip


def baby_gpt(vocab_size: int = 65, **overrides: Any) -> DecoderOnlyConfig:
    """nanoGPT's "baby GPT" for character-level Shakespeare: 6 layers, d_model 384, 6 heads,
    context 256, dropout 0.2 (~10.7M parameters at 65 characters)."""
    return _make_lm(vocab_size, dict(n_layers=6, d_model=384, n_heads=6, d_ff=1536,
                                     max_len=256, dropout=0.2), overrides)  # fmt: skip


def gpt2(vocab_size: int = 50257, **overrides: Any) -> DecoderOnlyConfig:
    """GPT-2 small (Radford et al. 2019): 12 layers, d_model 768, 12 heads, context 1024,
    vocabulary 50,257 → 124.4M parameters, as HF `GPT2LMHeadModel`."""
    return _make_lm(vocab_size, dict(n_layers=12, d_model=768, n_heads=12, d_ff=3072,
                                     max_len=1024, dropout=0.1), overrides)  # fmt: skip


def _make_lm(vocab_size: int, sizes: dict[str, Any], overrides: dict[str, Any]):
    # GPT-2's switches: pre-LN, tanh-GELU, learned positions, tied output, no √d scale.
    fields = {"vocab_size": vocab_size, "activation": "gelu_tanh", "norm_first": True,
              **sizes, **overrides}  # fmt: skip
    return DecoderOnlyConfig.create(**fields)


# --- encoder-only models (BERT) -----------------------------------------------------------
# Turc et al. 2019's compact BERTs ("Well-Read Students Learn Better"): 64-wide heads, d_ff 4·D.


def bert_tiny(vocab_size: int = 30522, **overrides: Any) -> EncoderOnlyConfig:
    """BERT-Tiny: 2 layers, d_model 128, 2 heads (4.4M parameters at 30,522 WordPieces)."""
    return _make_bert(vocab_size, dict(n_layers=2, d_model=128, n_heads=2, d_ff=512), overrides)


def bert_mini(vocab_size: int = 30522, **overrides: Any) -> EncoderOnlyConfig:
    """BERT-Mini: 4 layers, d_model 256, 4 heads (11.2M parameters at 30,522 WordPieces)."""
    return _make_bert(vocab_size, dict(n_layers=4, d_model=256, n_heads=4, d_ff=1024), overrides)


def bert_small(vocab_size: int = 30522, **overrides: Any) -> EncoderOnlyConfig:
    """BERT-Small: 4 layers, d_model 512, 8 heads (29M parameters at 30,522 WordPieces)."""
    return _make_bert(vocab_size, dict(n_layers=4, d_model=512, n_heads=8, d_ff=2048), overrides)


def bert_base(vocab_size: int = 30522, **overrides: Any) -> EncoderOnlyConfig:
    """BERT-base (Devlin et al. 2019): 12 layers, d_model 768, 12 heads, 512 positions; with
    the MLM head 109,514,298 parameters at 30,522 WordPieces, exactly HF `BertForMaskedLM`'s."""
    return _make_bert(vocab_size, dict(n_layers=12, d_model=768, n_heads=12, d_ff=3072),
                      overrides)  # fmt: skip


def _make_bert(vocab_size: int, sizes: dict[str, Any], overrides: dict[str, Any]):
    # BERT's switches: post-LN, erf-GELU, ε 1e-12, dropout 0.1 on residuals and attention.
    fields = {"vocab_size": vocab_size, "activation": "gelu", "norm_first": False,
              "layer_norm_eps": 1e-12, "dropout": 0.1, "attention_dropout": 0.1,
              **sizes, **overrides}  # fmt: skip
    return EncoderOnlyConfig.create(**fields)


# --- Vision Transformers (ViT) ------------------------------------------------------------
# Dosovitskiy et al. 2021 (B) and Touvron et al. 2021, DeiT (Ti, S): patch 16 at 224×224,
# 64-wide heads, d_ff 4·D, 1,000 ImageNet classes; timm's vit_*_patch16_224 shapes.


def vit_tiny(**overrides: Any) -> VisionConfig:
    """ViT-Ti/16: 12 layers, d_model 192, 3 heads (5.7M parameters at 224×224, 1,000 classes)."""
    return _make_vit(dict(n_layers=12, d_model=192, n_heads=3, d_ff=768), overrides)


def vit_small(**overrides: Any) -> VisionConfig:
    """ViT-S/16: 12 layers, d_model 384, 6 heads (22.1M parameters at 224×224, 1,000 classes)."""
    return _make_vit(dict(n_layers=12, d_model=384, n_heads=6, d_ff=1536), overrides)


def vit_base(**overrides: Any) -> VisionConfig:
    """ViT-B/16: 12 layers, d_model 768, 12 heads; 86,567,656 parameters at 224×224 with 1,000
    classes, exactly timm's `vit_base_patch16_224`."""
    return _make_vit(dict(n_layers=12, d_model=768, n_heads=12, d_ff=3072), overrides)


def _make_vit(sizes: dict[str, Any], overrides: dict[str, Any]) -> VisionConfig:
    # ViT's switches: pre-LN, erf-GELU, LayerNorm ε 1e-6, no dropout (ImageNet-21k pretraining
    # used 0.1; DeiT none), patch 16, 224×224, [CLS], learned positions.
    fields = {"image_size": 224, "patch_size": 16, "activation": "gelu", "norm_first": True,
              "layer_norm_eps": 1e-6, "dropout": 0.0, **sizes, **overrides}  # fmt: skip
    return VisionConfig.create(**fields)


#: Vision presets (`aiayn train image --preset`).
VIT_PRESETS: dict[str, Callable[..., VisionConfig]] = {
    "vit-tiny": vit_tiny,
    "vit-small": vit_small,
    "vit-base": vit_base,
}

#: Encoder-only presets (BERT).
BERT_PRESETS: dict[str, Callable[..., EncoderOnlyConfig]] = {
    "bert-tiny": bert_tiny,
    "bert-mini": bert_mini,
    "bert-small": bert_small,
    "bert-base": bert_base,
}

#: Language-model presets (`aiayn train lm --preset`).
LM_PRESETS: dict[str, Callable[..., DecoderOnlyConfig]] = {
    "gpt-mini": gpt_mini,
    "baby-gpt": baby_gpt,
    "gpt2": gpt2,
}

#: Encoder-decoder presets (`aiayn train --preset`).
PRESETS: dict[str, Callable[..., ModelConfig]] = {
    "tiny": tiny,
    "small": small,
    "base": base,
    "big": big,
}


def get(name: str, **overrides: Any):
    """The preset called `name` (of PRESETS, LM_PRESETS, BERT_PRESETS, VIT_PRESETS), with
    overrides (`vocab_size=` among them; a value of None is passed on, and refused, not read as
    unset)."""
    table = {**PRESETS, **LM_PRESETS, **BERT_PRESETS, **VIT_PRESETS}
    if name not in table:
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(table)}")
    return table[name](**overrides)


def _make(vocab_size: int, sizes: dict[str, Any], overrides: dict[str, Any]) -> ModelConfig:
    fields = {"src_vocab_size": vocab_size, "tgt_vocab_size": vocab_size, **sizes, **overrides}
    return ModelConfig.create(**fields)
