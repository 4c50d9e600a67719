"""Converters from other libraries' weights into aiayn models.

`from_hf_bert` does the same for BERT (`BertForMaskedLM`, `BertForSequenceClassification`,
`BertModel`) into an `EncoderOnly`: BERT's linear maps are already nn.Linear's layout, so the
conversion is renaming (table at `_bert_to_aiayn`).

`from_timm_vit` turns a timm `VisionTransformer` (e.g. `vit_base_patch16_224`) into ours:
timm's patch convolution becomes our linear patch projection (the kernel flattened), its
fused `qkv` is split into W_Q, W_K, W_V, the rest is renaming.

`from_hf_gpt2` turns a Hugging Face GPT-2 (`GPT2LMHeadModel`, `GPT2Model`, or their state
dict) into a `DecoderOnly` that computes the same logits. GPT-2 is our decoder-only model with
its switches set (`config_from_hf_gpt2`): pre-LN, tanh-GELU, learned positions, biases, the
output layer tied to the token embedding, no √d_model scale, LayerNorm ε from the config.

The one real difference in the weights is layout. GPT-2 stores its linear maps as `Conv1D`,
y = x·W + b with W of shape (in, out), where `nn.Linear` computes y = x·Wᵀ + b with W of shape
(out, in): every matrix is transposed on the way in. Its attention input projection `c_attn`
is one (D, 3D) matrix producing [Q | K | V] side by side; we split it into W_Q, W_K, W_V.

    GPT-2                          aiayn DecoderOnly
    wte, wpe                       decoder.embed, decoder.positional
    h.i.ln_1, h.i.ln_2             decoder.layers.i.res_self.norm, .res_ffn.norm
    h.i.attn.c_attn  (D, 3D)       decoder.layers.i.self_attn.w_q | w_k | w_v   (each Wᵀ)
    h.i.attn.c_proj                decoder.layers.i.self_attn.w_o
    h.i.mlp.c_fc, h.i.mlp.c_proj   decoder.layers.i.ffn.w_1, .w_2
    ln_f                           decoder.norm
    lm_head (= wte when tied)      generator (= decoder.embed when tied)

GPT-2 variants that compute something else fail with a `ConfigError` naming the field, never
convert into a model that silently differs. transformers itself is not imported here: the
config and weights are read by name, so any object with GPT-2's config fields will do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from aiayn.config import DecoderOnlyConfig, EncoderOnlyConfig, VisionConfig
from aiayn.errors import ConfigError
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.vision import VisionTransformer

log = logging.getLogger(__name__)

#: GPT-2's `activation_function` names -> ours. gelu_new, gelu_fast and gelu_pytorch_tanh are
#: three spellings of the tanh approximation GPT-2 was trained with.
_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}

#: Fields whose non-default value changes what GPT-2 computes in a way DecoderOnly does not.
_UNSUPPORTED = {
    "scale_attn_by_inverse_layer_idx": (
        False,
        "scales layer i's attention scores by 1/(i+1) (Mistral's GPT-2 runs), which aiayn's "
        "attention does not do",
    ),
    "reorder_and_upcast_attn": (
        False,
        "computes attention scores in fp32 with the scale folded into K, a numerics change "
        "aiayn's attention does not reproduce in half precision",
    ),
    "scale_attn_weights": (
        True,
        "off means scores without the 1/√d_k scale (§3.2.1), which aiayn always applies",
    ),
    "add_cross_attention": (
        False,
        "adds cross-attention to an encoder (an encoder-decoder), not a decoder-only model",
    ),
}

#: Buffers some GPT-2 checkpoints carry (the causal mask of old transformers versions).
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def _field(hf_config: Any, name: str, default: Any) -> Any:
    """A field of a `GPT2Config` or of its config.json as a dict."""
    if isinstance(hf_config, Mapping):
        return hf_config.get(name, default)
    return getattr(hf_config, name, default)


def config_from_hf_gpt2(
    hf_config: Any, pad_id: int | None = None, **overrides: Any
) -> DecoderOnlyConfig:
    """The `DecoderOnlyConfig` of a GPT-2 config (a `GPT2Config` or its config.json dict).

    `pad_id`: the id whose LEADING run marks a left-padded prompt in `DecoderOnly.start`. GPT-2
    has no padding token; by default it is the config's pad_token_id, else its eos_token_id
    (HF's convention for GPT-2 generation), else 0 when neither is in the vocabulary. A prompt
    must not begin with it (it would be read as padding). `overrides` replace any field
    (`dropout=0.0`, `attention_impl="math"`).
    """
    for name, (default, why) in _UNSUPPORTED.items():
        value = _field(hf_config, name, default)
        if bool(value) != default:
            raise ConfigError(f"GPT-2 config field '{name}' = {value!r} is not supported: it {why}")
    activation = _field(hf_config, "activation_function", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise ConfigError(
            f"GPT-2 config field 'activation_function' = {activation!r} is not supported; "
            f"supported: {', '.join(_ACTIVATIONS)}"
        )
    d_model = _field(hf_config, "n_embd", 768)
    n_inner = _field(hf_config, "n_inner", None)
    vocab_size = _field(hf_config, "vocab_size", 50257)
    resid = _field(hf_config, "resid_pdrop", 0.1)
    embd = _field(hf_config, "embd_pdrop", 0.1)
    if embd != resid:  # one P_drop serves embeddings and residuals here (§5.4)
        log.warning(
            "GPT-2 embd_pdrop %s differs from resid_pdrop %s; using %s for both "
            "(dropout only acts in training)", embd, resid, resid,
        )  # fmt: skip
    if pad_id is None:
        candidates = [
            _field(hf_config, "pad_token_id", None),
            _field(hf_config, "eos_token_id", None),
        ]
        valid = [i for i in candidates if isinstance(i, int) and 0 <= i < vocab_size]
        pad_id = valid[0] if valid else 0
    fields = dict(
        vocab_size=vocab_size,
        n_layers=_field(hf_config, "n_layer", 12),
        d_model=d_model,
        n_heads=_field(hf_config, "n_head", 12),
        d_ff=4 * d_model if n_inner is None else n_inner,  # GPT-2: 4·D unless n_inner is set
        dropout=resid,
        attention_dropout=_field(hf_config, "attn_pdrop", 0.1),
        activation=_ACTIVATIONS[activation],
        norm_first=True,
        layer_norm_eps=_field(hf_config, "layer_norm_epsilon", 1e-5),
        bias=True,
        positional="learned",
        max_len=_field(hf_config, "n_positions", 1024),
        tie_embeddings=bool(_field(hf_config, "tie_word_embeddings", True)),
        scale_embeddings=False,
        pad_id=pad_id,
        extra={"converted_from": "huggingface gpt2"},
    )
    fields.update(overrides)
    return DecoderOnlyConfig.create(**fields)


def _gpt2_state_dict(source: Any) -> dict[str, Tensor]:
    """GPT-2's tensors keyed as `GPT2Model` names them (no "transformer." prefix)."""
    state = source.state_dict() if hasattr(source, "state_dict") else dict(source)
    out = {}
    for key, value in state.items():
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        out[key.removeprefix("transformer.")] = value
    return out


class _Source:
    """Another library's tensors by name, each taken at most once with its shape checked, so
    a conversion fails loudly on a missing, misshapen or left-over tensor."""

    def __init__(self, state: Mapping[str, Tensor], family: str) -> None:
        self.state, self.family = state, family
        self.taken: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str, shape: tuple[int, ...]) -> Tensor:
        if key not in self.state:
            raise ConfigError(
                f"{self.family} weights: '{key}' missing; is this a {self.family} state dict?"
            )
        self.taken.add(key)
        tensor = self.state[key]
        if tuple(tensor.shape) != shape:
            raise ConfigError(
                f"{self.family} weights: '{key}' has shape {tuple(tensor.shape)}, the config "
                f"implies {shape}; do the weights and the config belong together?"
            )
        return tensor

    def take_affine(
        self, out: dict[str, Tensor], key: str, dst: str, weight_shape: tuple[int, ...]
    ) -> None:
        """`key`.weight (of `weight_shape`) and `key`.bias (one per output) into `out` as
        `dst`.weight and `dst`.bias: a linear map's or a LayerNorm's pair."""
        out[dst + ".weight"] = self.take(key + ".weight", weight_shape)
        out[dst + ".bias"] = self.take(key + ".bias", weight_shape[:1])

    def check_all_taken(self, hint: str) -> None:
        unused = sorted(set(self.state) - self.taken)
        if unused:
            shown = ", ".join(unused[:5]) + (" …" if len(unused) > 5 else "")
            raise ConfigError(
                f"{self.family} weights: {len(unused)} tensor(s) the config does not account "
                f"for ({shown}); {hint}"
            )


def _gpt2_to_aiayn(state: dict[str, Tensor], cfg: DecoderOnlyConfig) -> dict[str, Tensor]:
    """Rename and re-lay GPT-2's tensors as DecoderOnly's state dict."""
    D = cfg.d_model
    src = _Source(state, "GPT-2")

    def conv1d(key: str, n_in: int, n_out: int) -> tuple[Tensor, Tensor]:
        """A Conv1D's (in, out) weight as nn.Linear's (out, in), and its bias."""
        return src.take(key + ".weight", (n_in, n_out)).t(), src.take(key + ".bias", (n_out,))

    def norm(key: str, dst: str) -> None:
        src.take_affine(out, key, dst, (D,))

    out: dict[str, Tensor] = {}
    wte = src.take("wte.weight", (cfg.vocab_size, D))
    out["decoder.embed.weight"] = wte
    out["decoder.positional.weight"] = src.take("wpe.weight", (cfg.max_len, D))
    for i in range(cfg.n_layers):
        hf, dst = f"h.{i}", f"decoder.layers.{i}"
        norm(f"{hf}.ln_1", f"{dst}.res_self.norm")
        w, b = conv1d(f"{hf}.attn.c_attn", D, 3 * D)  # w: (3D, D), rows [Q; K; V]
        for name, w_part, b_part in zip(
            ("w_q", "w_k", "w_v"), w.split(D, dim=0), b.split(D), strict=True
        ):
            out[f"{dst}.self_attn.{name}.weight"] = w_part
            out[f"{dst}.self_attn.{name}.bias"] = b_part
        w, b = conv1d(f"{hf}.attn.c_proj", D, D)
        out[f"{dst}.self_attn.w_o.weight"], out[f"{dst}.self_attn.w_o.bias"] = w, b
        norm(f"{hf}.ln_2", f"{dst}.res_ffn.norm")
        w, b = conv1d(f"{hf}.mlp.c_fc", D, cfg.layer.d_ff)
        out[f"{dst}.ffn.w_1.weight"], out[f"{dst}.ffn.w_1.bias"] = w, b
        w, b = conv1d(f"{hf}.mlp.c_proj", cfg.layer.d_ff, D)
        out[f"{dst}.ffn.w_2.weight"], out[f"{dst}.ffn.w_2.bias"] = w, b
    norm("ln_f", "decoder.norm")
    if "lm_head.weight" in src:
        head = src.take("lm_head.weight", (cfg.vocab_size, D))
        if cfg.tie_embeddings and not torch.equal(head, wte):
            raise ConfigError(
                "GPT-2 weights: lm_head differs from wte but the config ties them "
                "(tie_word_embeddings); pass the matching config"
            )
        if not cfg.tie_embeddings:
            out["generator.weight"] = head
    elif not cfg.tie_embeddings:
        raise ConfigError("GPT-2 weights: untied config but no 'lm_head.weight' in the weights")
    src.check_all_taken("does the config's n_layer match the weights?")
    return out


def from_hf_gpt2(
    hf_model_or_state_dict: Any, hf_config: Any = None, **overrides: Any
) -> DecoderOnly:
    """A `DecoderOnly` with a Hugging Face GPT-2's weights, in eval mode (same logits).

    `hf_model_or_state_dict`: a `GPT2LMHeadModel` / `GPT2Model`, or a state dict of either
    (with or without the "transformer." prefix). `hf_config`: its `GPT2Config` or config.json
    dict; defaults to the model's own `.config`. `overrides` go to `config_from_hf_gpt2`.
    """
    if hf_config is None:
        hf_config = getattr(hf_model_or_state_dict, "config", None)
        if hf_config is None:
            raise ConfigError("from_hf_gpt2: pass hf_config along with a state dict")
    cfg = config_from_hf_gpt2(hf_config, **overrides)
    state = _gpt2_to_aiayn(_gpt2_state_dict(hf_model_or_state_dict), cfg)
    model = DecoderOnly(cfg).to(state["decoder.embed.weight"].dtype)
    if cfg.tie_embeddings:  # the state dict names the one shared matrix twice
        state["generator.weight"] = state["decoder.embed.weight"]
    with torch.no_grad():
        model.load_state_dict(state, strict=True)  # copies into our tensors: tying survives
    return model.eval()


# --- BERT ---------------------------------------------------------------------------------------

#: BERT's `hidden_act` names -> ours ("gelu" is the exact erf form in BERT and here).
_BERT_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "relu": "relu"}
#: Buffers, not weights, that some BERT checkpoints carry.
_BERT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def config_from_hf_bert(hf_config: Any, num_labels: int = 0, **overrides: Any) -> EncoderOnlyConfig:
    """The `EncoderOnlyConfig` of a BERT config (a `BertConfig` or its config.json dict).

    `num_labels`: classes of the classification head (0: none). `overrides` replace any field.
    """
    position = _field(hf_config, "position_embedding_type", "absolute")
    if position != "absolute":
        raise ConfigError(
            f"BERT config field 'position_embedding_type' = {position!r} is not supported: "
            "aiayn's BERT has learned absolute positions"
        )
    if _field(hf_config, "is_decoder", False):
        raise ConfigError("BERT config field 'is_decoder' = true: a causal BERT is not supported")
    activation = _field(hf_config, "hidden_act", "gelu")
    if activation not in _BERT_ACTIVATIONS:
        raise ConfigError(
            f"BERT config field 'hidden_act' = {activation!r} is not supported; supported: "
            f"{', '.join(_BERT_ACTIVATIONS)}"
        )
    pad_id = _field(hf_config, "pad_token_id", 0)
    fields = dict(
        vocab_size=_field(hf_config, "vocab_size", 30522),
        n_layers=_field(hf_config, "num_hidden_layers", 12),
        d_model=_field(hf_config, "hidden_size", 768),
        n_heads=_field(hf_config, "num_attention_heads", 12),
        d_ff=_field(hf_config, "intermediate_size", 3072),
        dropout=_field(hf_config, "hidden_dropout_prob", 0.1),
        attention_dropout=_field(hf_config, "attention_probs_dropout_prob", 0.1),
        activation=_BERT_ACTIVATIONS[activation],
        norm_first=False,
        layer_norm_eps=_field(hf_config, "layer_norm_eps", 1e-12),
        bias=True,
        positional="learned",
        max_len=_field(hf_config, "max_position_embeddings", 512),
        type_vocab_size=_field(hf_config, "type_vocab_size", 2),
        embed_norm=True,
        scale_embeddings=False,
        num_labels=num_labels,
        pooling="cls",
        pad_id=pad_id if isinstance(pad_id, int) else 0,
        extra={"converted_from": "huggingface bert"},
    )
    fields.update(overrides)
    return EncoderOnlyConfig.create(**fields)


def _bert_state_dict(source: Any) -> dict[str, Tensor]:
    """BERT's tensors keyed as `BertModel` names them (the "bert." prefix of the task models
    dropped; their heads, "cls." and "classifier.", kept), without buffers."""
    state = source.state_dict() if hasattr(source, "state_dict") else dict(source)
    out = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        if key not in _BERT_BUFFERS:
            out[key] = value
    return out


def _bert_to_aiayn(state: dict[str, Tensor], cfg: EncoderOnlyConfig) -> dict[str, Tensor]:
    """Rename BERT's tensors as EncoderOnly's state dict (nn.Linear layouts already agree)."""
    D, F = cfg.d_model, cfg.layer.d_ff
    src = _Source(state, "BERT")
    out: dict[str, Tensor] = {}

    def linear(key: str, dst: str, n_in: int, n_out: int) -> None:
        src.take_affine(out, key, dst, (n_out, n_in))

    def norm(key: str, dst: str) -> None:
        src.take_affine(out, key, dst, (D,))

    emb = "embeddings"
    out["encoder.embed.weight"] = src.take(f"{emb}.word_embeddings.weight", (cfg.vocab_size, D))
    out["encoder.positional.weight"] = src.take(f"{emb}.position_embeddings.weight",
                                                (cfg.max_len, D))  # fmt: skip
    out["segments.weight"] = src.take(f"{emb}.token_type_embeddings.weight",
                                      (cfg.type_vocab_size, D))  # fmt: skip
    norm(f"{emb}.LayerNorm", "encoder.embed_norm")
    for i in range(cfg.n_layers):
        hf, dst = f"encoder.layer.{i}", f"encoder.layers.{i}"
        for name, ours in (("query", "w_q"), ("key", "w_k"), ("value", "w_v")):
            linear(f"{hf}.attention.self.{name}", f"{dst}.self_attn.{ours}", D, D)
        linear(f"{hf}.attention.output.dense", f"{dst}.self_attn.w_o", D, D)
        norm(f"{hf}.attention.output.LayerNorm", f"{dst}.res_self.norm")
        linear(f"{hf}.intermediate.dense", f"{dst}.ffn.w_1", D, F)
        linear(f"{hf}.output.dense", f"{dst}.ffn.w_2", F, D)
        norm(f"{hf}.output.LayerNorm", f"{dst}.res_ffn.norm")
    if "cls.predictions.transform.dense.weight" in src:  # an MLM head (else ours starts fresh)
        linear("cls.predictions.transform.dense", "mlm.dense", D, D)
        norm("cls.predictions.transform.LayerNorm", "mlm.norm")
        out["mlm.bias"] = src.take("cls.predictions.bias", (cfg.vocab_size,))
        for key in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
            if key in src:  # aliases of the word embeddings and cls.predictions.bias
                tied = src.take(key, tuple(state[key].shape))
                expected = out["encoder.embed.weight" if key.endswith("weight") else "mlm.bias"]
                if not torch.equal(tied, expected):
                    raise ConfigError(f"BERT weights: '{key}' is not tied; aiayn's MLM head is")
    if cfg.num_labels:
        if cfg.pooling == "cls":
            linear("pooler.dense", "pooler.dense", D, D)
        linear("classifier", "classifier", D, cfg.num_labels)
    elif "pooler.dense.weight" in src:  # BertModel's pooler, unused without a classifier
        src.take("pooler.dense.weight", (D, D))
        src.take("pooler.dense.bias", (D,))
    src.check_all_taken("does the config's num_hidden_layers (or num_labels) match?")
    return out


def from_hf_bert(
    hf_model_or_state_dict: Any, hf_config: Any = None, **overrides: Any
) -> EncoderOnly:
    """An `EncoderOnly` with a Hugging Face BERT's weights, in eval mode (same outputs).

    `hf_model_or_state_dict`: a `BertForMaskedLM`, `BertForSequenceClassification`,
    `BertForPreTraining` (its next-sentence head is dropped) or `BertModel`, or a state dict of
    one. `hf_config`: its `BertConfig` or config.json dict; defaults to the model's `.config`.
    The classification head comes over when the weights have one ("classifier.weight");
    without an MLM head in the weights, the MLM head starts freshly initialised.
    """
    if hf_config is None:
        hf_config = getattr(hf_model_or_state_dict, "config", None)
        if hf_config is None:
            raise ConfigError("from_hf_bert: pass hf_config along with a state dict")
    state = _bert_state_dict(hf_model_or_state_dict)
    state = {k: v for k, v in state.items() if not k.startswith("cls.seq_relationship")}
    num_labels = state["classifier.weight"].shape[0] if "classifier.weight" in state else 0
    cfg = config_from_hf_bert(hf_config, **{"num_labels": num_labels, **overrides})
    converted = _bert_to_aiayn(state, cfg)
    model = EncoderOnly(cfg).to(converted["encoder.embed.weight"].dtype)
    converted["mlm.weight"] = converted["encoder.embed.weight"]  # one tensor, named twice
    with torch.no_grad():  # parts the weights lack (an MLM head) keep their initial values
        model.load_state_dict({**model.state_dict(), **converted}, strict=True)
    return model.eval()


# --- timm ViT --------------------------------------------------------------------------------


def config_from_timm_vit(timm_model: Any, **overrides: Any) -> VisionConfig:
    """The `VisionConfig` of a timm `VisionTransformer` (read from its modules). Variants that
    compute something our ViT does not (register tokens, layer scale, QK-norm, a pre-norm,
    average pooling with timm's fc_norm, positions without the class token) fail with a
    ConfigError naming the switch."""
    m = timm_model
    block = m.blocks[0]
    unsupported = {
        "register tokens (reg_tokens)": getattr(m, "num_reg_tokens", 0) > 0,
        "positions without the class token (no_embed_class)": getattr(m, "no_embed_class", False),
        "global_pool other than 'token'": getattr(m, "global_pool", "token") != "token",
        "a norm before the blocks (pre_norm)": not isinstance(m.norm_pre, torch.nn.Identity),
        "layer scale (init_values)": not isinstance(block.ls1, torch.nn.Identity),
        "QK-norm (qk_norm)": not isinstance(block.attn.q_norm, torch.nn.Identity),
        "no class token (class_token=False)": m.cls_token is None,
        "no qkv bias (qkv_bias=False)": block.attn.qkv.bias is None,
    }
    for what, present in unsupported.items():
        if present:
            raise ConfigError(f"timm ViT: {what} is not supported by aiayn's VisionTransformer")
    proj = m.patch_embed.proj
    img = m.patch_embed.img_size
    if img[0] != img[1] or proj.kernel_size[0] != proj.kernel_size[1]:
        raise ConfigError(f"timm ViT: image {img} / patch {proj.kernel_size}: only squares")
    fields = dict(
        image_size=img[0], patch_size=proj.kernel_size[0], channels=proj.in_channels,
        n_layers=len(m.blocks), d_model=m.embed_dim, n_heads=block.attn.num_heads,
        d_ff=block.mlp.fc1.out_features, activation="gelu", norm_first=True,
        layer_norm_eps=block.norm1.eps, dropout=0.0, positional="learned", pooling="cls",
        num_labels=m.num_classes,
    )  # fmt: skip
    return VisionConfig.create(**{**fields, **overrides})


def _timm_vit_to_aiayn(state: Mapping[str, Tensor], cfg: VisionConfig) -> dict[str, Tensor]:
    """Rename and re-lay timm's ViT tensors as VisionTransformer's state dict."""
    D, F, C, p = cfg.d_model, cfg.layer.d_ff, cfg.channels, cfg.patch_size
    src = _Source(state, "timm ViT")
    out: dict[str, Tensor] = {}

    def linear(key: str, dst: str, n_in: int, n_out: int) -> None:
        src.take_affine(out, key, dst, (n_out, n_in))

    def norm(key: str, dst: str) -> None:
        src.take_affine(out, key, dst, (D,))

    # a stride-p convolution is one linear map of each flattened (C, p, p) patch
    kernel = src.take("patch_embed.proj.weight", (D, C, p, p))
    out["encoder.embed.proj.weight"] = kernel.reshape(D, C * p * p)
    out["encoder.embed.proj.bias"] = src.take("patch_embed.proj.bias", (D,))
    out["encoder.embed.cls"] = src.take("cls_token", (1, 1, D))
    out["encoder.positional.weight"] = src.take("pos_embed", (1, cfg.num_tokens, D))
    for i in range(cfg.n_layers):
        t, dst = f"blocks.{i}", f"encoder.layers.{i}"
        norm(f"{t}.norm1", f"{dst}.res_self.norm")
        qkv_w = src.take(f"{t}.attn.qkv.weight", (3 * D, D))  # rows [Q; K; V]
        qkv_b = src.take(f"{t}.attn.qkv.bias", (3 * D,))
        for j, ours in enumerate(("w_q", "w_k", "w_v")):
            out[f"{dst}.self_attn.{ours}.weight"] = qkv_w[j * D : (j + 1) * D]
            out[f"{dst}.self_attn.{ours}.bias"] = qkv_b[j * D : (j + 1) * D]
        linear(f"{t}.attn.proj", f"{dst}.self_attn.w_o", D, D)
        norm(f"{t}.norm2", f"{dst}.res_ffn.norm")
        linear(f"{t}.mlp.fc1", f"{dst}.ffn.w_1", D, F)
        linear(f"{t}.mlp.fc2", f"{dst}.ffn.w_2", F, D)
    norm("norm", "encoder.norm")
    linear("head", "classifier", D, cfg.num_labels)
    src.check_all_taken("does the config's depth match the weights?")
    return out


def from_timm_vit(timm_model: Any, **overrides: Any) -> VisionTransformer:
    """A `VisionTransformer` with a timm `VisionTransformer`'s weights, in eval mode: the same
    logits for the same images (tested). `overrides`: config fields to change (e.g. dropout).
    timm itself is not imported here: its modules and state dict are read by name."""
    cfg = config_from_timm_vit(timm_model, **overrides)
    converted = _timm_vit_to_aiayn(timm_model.state_dict(), cfg)
    model = VisionTransformer(cfg).to(converted["encoder.embed.cls"].dtype)
    with torch.no_grad():
        model.load_state_dict(converted, strict=True)
    return model.eval()


__all__ = [
    "config_from_hf_bert",
    "config_from_hf_gpt2",
    "config_from_timm_vit",
    "from_hf_bert",
    "from_hf_gpt2",
    "from_timm_vit",
]
