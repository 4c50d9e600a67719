"""Converters from other libraries' weights into aiayn models.

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

from aiayn.config import DecoderOnlyConfig
from aiayn.errors import ConfigError
from aiayn.models.decoder_only import DecoderOnly

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


def _gpt2_to_aiayn(state: dict[str, Tensor], cfg: DecoderOnlyConfig) -> dict[str, Tensor]:
    """Rename and re-lay GPT-2's tensors as DecoderOnly's state dict."""
    D = cfg.d_model
    taken: set[str] = set()

    def take(key: str) -> Tensor:
        if key not in state:
            raise ConfigError(f"GPT-2 weights: '{key}' missing; is this a GPT-2 state dict?")
        taken.add(key)
        return state[key]

    def expect_shape(key: str, tensor: Tensor, shape: tuple[int, ...]) -> Tensor:
        if tuple(tensor.shape) != shape:
            raise ConfigError(
                f"GPT-2 weights: '{key}' has shape {tuple(tensor.shape)}, the config implies "
                f"{shape}; do the weights and the config belong together?"
            )
        return tensor

    def conv1d(key: str, n_in: int, n_out: int) -> tuple[Tensor, Tensor]:
        """A Conv1D's (in, out) weight as nn.Linear's (out, in), and its bias."""
        w = expect_shape(key + ".weight", take(key + ".weight"), (n_in, n_out))
        b = expect_shape(key + ".bias", take(key + ".bias"), (n_out,))
        return w.t(), b

    def norm(src: str, dst: str) -> None:
        out[dst + ".weight"] = expect_shape(src + ".weight", take(src + ".weight"), (D,))
        out[dst + ".bias"] = expect_shape(src + ".bias", take(src + ".bias"), (D,))

    out: dict[str, Tensor] = {}
    wte = expect_shape("wte.weight", take("wte.weight"), (cfg.vocab_size, D))
    out["decoder.embed.weight"] = wte
    out["decoder.positional.weight"] = expect_shape(
        "wpe.weight", take("wpe.weight"), (cfg.max_len, D)
    )
    for i in range(cfg.n_layers):
        src, dst = f"h.{i}", f"decoder.layers.{i}"
        norm(f"{src}.ln_1", f"{dst}.res_self.norm")
        w, b = conv1d(f"{src}.attn.c_attn", D, 3 * D)  # w: (3D, D), rows [Q; K; V]
        for name, w_part, b_part in zip(
            ("w_q", "w_k", "w_v"), w.split(D, dim=0), b.split(D), strict=True
        ):
            out[f"{dst}.self_attn.{name}.weight"] = w_part
            out[f"{dst}.self_attn.{name}.bias"] = b_part
        w, b = conv1d(f"{src}.attn.c_proj", D, D)
        out[f"{dst}.self_attn.w_o.weight"], out[f"{dst}.self_attn.w_o.bias"] = w, b
        norm(f"{src}.ln_2", f"{dst}.res_ffn.norm")
        w, b = conv1d(f"{src}.mlp.c_fc", D, cfg.layer.d_ff)
        out[f"{dst}.ffn.w_1.weight"], out[f"{dst}.ffn.w_1.bias"] = w, b
        w, b = conv1d(f"{src}.mlp.c_proj", cfg.layer.d_ff, D)
        out[f"{dst}.ffn.w_2.weight"], out[f"{dst}.ffn.w_2.bias"] = w, b
    norm("ln_f", "decoder.norm")
    if "lm_head.weight" in state:
        head = take("lm_head.weight")
        if cfg.tie_embeddings and not torch.equal(head, wte):
            raise ConfigError(
                "GPT-2 weights: lm_head differs from wte but the config ties them "
                "(tie_word_embeddings); pass the matching config"
            )
        if not cfg.tie_embeddings:
            out["generator.weight"] = expect_shape("lm_head.weight", head, (cfg.vocab_size, D))
    elif not cfg.tie_embeddings:
        raise ConfigError("GPT-2 weights: untied config but no 'lm_head.weight' in the weights")
    unused = sorted(set(state) - taken)
    if unused:
        shown = ", ".join(unused[:5]) + (" …" if len(unused) > 5 else "")
        raise ConfigError(
            f"GPT-2 weights: {len(unused)} tensor(s) the config does not account for ({shown}); "
            "does the config's n_layer match the weights?"
        )
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


__all__ = ["config_from_hf_gpt2", "from_hf_gpt2"]
