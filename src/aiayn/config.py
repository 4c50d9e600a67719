"""Model configurations: typed, frozen dataclasses saved with every model as `config.json`.

The Transformer family shares one block, so the settings of that block live in ONE nested
dataclass, `LayerConfig`; each family's config holds a `layer` and adds only what is its own
(vocabularies, depths, positions, tying). `config.json` names the family (`"arch"`) and a schema
version, so a directory loads as the right model or fails with a clear message, never silently
with the wrong meaning. A schema-1 file (flat fields, no `arch`, written before the family
existed) loads as the encoder-decoder it is.

Defaults are the paper's base model (Vaswani et al. 2017, Table 3, row "base").
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text, read_json_object

#: 2: the layer settings nested under "layer", and "arch". 1: flat, encoder-decoder only.
#: Bump when a field changes meaning or is removed; adding a field with a default does not.
SCHEMA_VERSION = 2

#: Absolute (added to the embeddings): sinusoidal (§3.5), learned. Relative (inside attention):
#: rope, alibi, t5 (bucketed bias), shaw (clipped distances, keys and values). none = NoPE.
Positional = Literal["sinusoidal", "learned", "rope", "alibi", "t5", "shaw", "none"]
Activation = Literal["relu", "gelu", "gelu_tanh"]
Tying = Literal["none", "decoder", "all"]
AttentionImpl = Literal["auto", "sdpa", "math"]
Norm = Literal["layer", "rms", "batch"]


def option(text: str, default: Any) -> Any:
    """A dataclass field with an immutable default and its help text, which the generated CLI
    flags show: `d_model: int = option("width of the residual stream", 512)`."""
    return field(default=default, metadata={"help": text})


def check_field_types(obj: Any, what: str) -> None:
    """ConfigError naming the field whose value does not have its annotated type.

    Handles the annotations configs use: int, float (an int is accepted), bool, str,
    `Literal[...]`, `X | None`, and nested dataclasses. Booleans are not integers here.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        why = _type_problem(value, hints[f.name])
        if why:
            raise ConfigError(f"{what} '{f.name}' = {value!r}: {why}")


def _type_problem(value: Any, hint: Any) -> str | None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = [_type_problem(value, h) for h in options if h is not type(None)]
        return None if None in problems else problems[0]
    if origin is Literal:
        choices = typing.get_args(hint)
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok and value == value else "must be a number"  # NaN != NaN
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, hint) else f"must be a {hint.__name__}"
    if origin is dict:  # free-form notes: any contents, but an object
        return None if isinstance(value, dict) else "must be an object of name: value pairs"
    return None


@dataclass(frozen=True)
class LayerConfig:
    """The settings of the one Transformer block every family stacks (`aiayn.nn.block`)."""

    d_model: int = option("width of the residual stream (§3: 512 in the base model)", 512)
    n_heads: int = option("attention heads h (§3.2.2: 8); d_k = d_model / h", 8)
    d_k: int | None = option(
        "width of each head's queries and keys, when not d_model / h (Table 3 row B shrinks it; "
        "values stay d_model / h); unset = d_model / h",
        None,
    )
    d_ff: int = option("inner width of the feed-forward network (§3.3: 2048)", 2048)
    dropout: float = option(
        "P_drop on each sub-layer's output and on embeddings + positions (§5.4: 0.1)", 0.1
    )
    attention_dropout: float = option("dropout on the attention weights (not in the paper)", 0.0)
    activation_dropout: float = option(
        "dropout on the feed-forward's inner activations (not in the paper)", 0.0
    )
    activation: Activation = option(
        "feed-forward activation: relu (§3.3), gelu (BERT), gelu_tanh (GPT-2's approximation)",
        "relu",
    )
    norm_first: bool = option(
        "pre-LN, x + Sublayer(LN(x)) (GPT-2 and most since); off = post-LN, the paper's "
        "LN(x + Sublayer(x)) (§3.1)",
        False,
    )
    norm: Norm = option(
        "the normalisation of every residual and the stack's final norm: layer (LayerNorm, "
        "§3.1), rms (RMSNorm: no mean, no shift; LLaMA), batch (BatchNorm over the batch's real "
        "tokens: only to show why Transformers do not use it, docs/why.md)",
        "layer",
    )
    layer_norm_eps: float = option("epsilon of the norms (LayerNorm, RMSNorm, BatchNorm)", 1e-5)
    bias: bool = option(
        "biases in the attention and feed-forward linear maps (§3.3 has them)", True
    )
    attention_impl: AttentionImpl = option(
        "attention kernel: math (the reference, can return weights), sdpa (PyTorch's fused "
        "kernel), auto (the faster where it runs)",
        "auto",
    )
    attention_window: int | None = option(
        "local self-attention: each position attends only to positions at most this far away "
        "(causal in a decoder); unset = full attention (the paper). Cross-attention is never "
        "windowed",
        None,
    )

    def __post_init__(self) -> None:
        check_field_types(self, "layer field")

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"layer field '{name}' = {getattr(self, name)!r}: {why}")

        for name in ("d_model", "n_heads", "d_ff"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        if self.d_k is not None and self.d_k <= 0:
            raise bad("d_k", "must be a positive integer, or None for d_model / n_heads")
        if self.attention_window is not None and self.attention_window < 1:
            raise bad("attention_window", "must be >= 1, or None for full attention")
        if self.d_model % self.n_heads:
            raise bad("d_model", f"must be divisible by n_heads = {self.n_heads}")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "must be in [0, 1)")
        if self.layer_norm_eps <= 0:
            raise bad("layer_norm_eps", "must be positive")

    @property
    def head_dim(self) -> int:
        """d_v = d_model / h (§3.2.2): the width of each head's values and output."""
        return self.d_model // self.n_heads

    @property
    def key_dim(self) -> int:
        """d_k: the width of each head's queries and keys (d_model / h unless `d_k` is set)."""
        return self.d_k if self.d_k is not None else self.head_dim


LAYER_FIELDS = frozenset(f.name for f in dataclasses.fields(LayerConfig))


class _FamilyConfig:
    """What every family's config shares: `layer`, JSON with `arch` and schema version,
    `replace`, and `create`/`replace` taking layer settings flat (`dropout=0.3`)."""

    arch: ClassVar[str]
    layer: LayerConfig
    positional: str

    @property
    def d_model(self) -> int:
        return self.layer.d_model

    @property
    def n_heads(self) -> int:
        return self.layer.n_heads

    @property
    def head_dim(self) -> int:
        return self.layer.head_dim

    @classmethod
    def create(cls, **fields: Any):
        """The config from fields, where layer settings may be given flat:
        `ModelConfig.create(d_model=256, n_encoder_layers=3)`."""
        layer = {k: fields.pop(k) for k in list(fields) if k in LAYER_FIELDS}
        # the family's own default layer (GPT-2's switches for the decoder-only model)
        default = next(f for f in dataclasses.fields(cls) if f.name == "layer").default_factory
        base = fields.pop("layer", None) or default()
        if isinstance(base, dict):
            base = _build(LayerConfig, base, "layer")
        return cls(layer=dataclasses.replace(base, **layer), **fields)

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again); layer settings may be flat."""
        layer = {k: changes.pop(k) for k in list(changes) if k in LAYER_FIELDS}
        if layer:
            changes["layer"] = dataclasses.replace(changes.get("layer", self.layer), **layer)
        return dataclasses.replace(self, **changes)

    def _check_single_stack(self) -> None:
        """The checks of a family with one stack and one vocabulary (decoder-only, encoder-only):
        types, positive sizes, a pad id inside the vocabulary, and `_check_common`."""
        check_field_types(self, "config field")
        for name in ("vocab_size", "n_layers", "max_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"config field '{name}' = {getattr(self, name)!r}: must be a positive integer"
                )
        self._check_common()
        if not 0 <= self.pad_id < self.vocab_size:
            raise ConfigError(f"config field 'pad_id' = {self.pad_id}: must be a valid token id")

    def _check_common(self) -> None:
        if self.positional == "rope" and self.layer.key_dim % 2:
            raise ConfigError(
                f"config field 'positional' = 'rope': needs an even query/key width per head "
                f"(d_k = {self.layer.key_dim})"
            )

    # --- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "arch": self.arch, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config"):
        """The config in `data` (a parsed config.json), checked against this family."""
        data = dict(data)
        version = data.pop("schema_version", None)
        if version is None:
            raise ConfigError(f"{source}: missing 'schema_version'; is this an aiayn config?")
        if version not in (1, SCHEMA_VERSION):
            raise ConfigError(
                f"{source}: schema_version {version} is not supported by this aiayn "
                f"(expects {SCHEMA_VERSION}); upgrade aiayn or re-export the model"
            )
        arch = data.pop("arch", "encoder_decoder")  # schema 1 had only the encoder-decoder
        if arch != cls.arch:
            raise ConfigError(f"{source}: arch '{arch}' is not a {cls.arch} model")
        layer = data.pop("layer", {})
        if not isinstance(layer, dict):
            raise ConfigError(f"{source}: 'layer' must be a JSON object of layer settings")
        if version == 1:  # flat: the layer settings sat beside the others
            layer = {**layer, **{k: data.pop(k) for k in list(data) if k in LAYER_FIELDS}}
        known = {f.name for f in dataclasses.fields(cls)} - {"layer"}
        unknown = sorted(set(data) - known)
        unknown += [f"layer.{k}" for k in sorted(set(layer) - LAYER_FIELDS)]
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; check spelling")
        try:
            return cls(layer=_build(LayerConfig, layer, "layer"), **data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write `config.json` atomically (never leaves a half-written file)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike):
        return cls.from_dict(read_json_object(path, "config file"), source=str(path))


def _build(cls: type, fields: dict[str, Any], what: str) -> Any:
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what} field(s) {', '.join(unknown)}; check spelling")
    return cls(**fields)


@dataclass(frozen=True)
class ModelConfig(_FamilyConfig):
    """The encoder-decoder Transformer of the paper (`arch` "encoder_decoder")."""

    arch: ClassVar[str] = "encoder_decoder"

    src_vocab_size: int = 37000  # §5.1: shared source-target BPE vocabulary of ~37k tokens
    tgt_vocab_size: int = 37000
    n_encoder_layers: int = 6  # §3.1: N = 6
    n_decoder_layers: int = 6  # §3.1: N = 6
    layer: LayerConfig = field(default_factory=LayerConfig)
    positional: Positional = "sinusoidal"  # §3.5; "learned" performed nearly identically
    max_len: int = 1024  # longest sequence for learned positions (sinusoidal extrapolates)
    tie_embeddings: Tying = "all"  # §3.4: source emb = target emb = pre-softmax projection
    pad_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. preset name)

    def __post_init__(self) -> None:
        check_field_types(self, "config field")

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"config field '{name}' = {getattr(self, name)!r}: {why}")

        for name in ("src_vocab_size", "tgt_vocab_size", "max_len"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            if getattr(self, name) < 0:
                raise bad(name, "must be a non-negative integer")
        self._check_common()
        if self.tie_embeddings == "all" and self.src_vocab_size != self.tgt_vocab_size:
            raise bad(
                "tie_embeddings",
                "'all' shares one embedding across languages, so src_vocab_size must equal "
                "tgt_vocab_size; use 'decoder' for separate vocabularies",
            )
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise bad("pad_id", "must be a valid token id in both vocabularies")


EncoderDecoderConfig = ModelConfig


@dataclass(frozen=True)
class DecoderOnlyConfig(_FamilyConfig):
    """A decoder-only language model (GPT; `arch` "decoder_only"): causal self-attention
    blocks, no encoder, no cross-attention. Defaults are GPT-2 small's switches at a small
    size; `presets.gpt2()` is GPT-2 small itself."""

    arch: ClassVar[str] = "decoder_only"

    vocab_size: int = 50257
    n_layers: int = 12
    layer: LayerConfig = field(
        default_factory=lambda: LayerConfig(
            d_model=768, n_heads=12, d_ff=3072, activation="gelu_tanh", norm_first=True
        )
    )
    positional: Positional = "learned"  # GPT-2: learned absolute positions
    max_len: int = 1024  # the context length
    tie_embeddings: bool = True  # the output layer is the input embedding (GPT-2)
    # The paper multiplies embeddings by √d_model (§3.4); GPT-2 does not.
    scale_embeddings: bool = False
    pad_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_single_stack()


Pooling = Literal["cls", "mean"]


@dataclass(frozen=True)
class EncoderOnlyConfig(_FamilyConfig):
    """An encoder-only model (BERT; `arch` "encoder_only"): bidirectional self-attention
    blocks, a masked-LM head tied to the token embedding, and optionally a classification head.
    Defaults are BERT-base's switches (post-LN, erf-GELU, learned positions, segment
    embeddings, a LayerNorm on the embeddings, LayerNorm ε 1e-12); `presets.bert_base()` is
    BERT-base itself."""

    arch: ClassVar[str] = "encoder_only"

    vocab_size: int = 30522
    n_layers: int = 12
    layer: LayerConfig = field(
        default_factory=lambda: LayerConfig(
            d_model=768, n_heads=12, d_ff=3072, activation="gelu", attention_dropout=0.1,
            layer_norm_eps=1e-12,
        )
    )  # fmt: skip
    positional: Positional = "learned"  # BERT: learned absolute positions
    max_len: int = 512  # the longest input, [CLS] and [SEP]s included
    #: Segment (token type) embeddings: sentence A and B of a pair; 0 = none (RoBERTa-style
    #: single segment is 1).
    type_vocab_size: int = 2
    #: LayerNorm over token + position + segment embeddings before the first block (BERT).
    embed_norm: bool = True
    scale_embeddings: bool = False  # BERT does not multiply embeddings by √d_model
    #: Classes of the classification head; 0 = no head (a pretraining/MLM-only model).
    num_labels: int = 0
    #: What the classifier reads: "cls" = BERT's pooler, tanh(W·h_[CLS] + b); "mean" = the
    #: mean of the real tokens' final vectors (Sentence-BERT), no pooler.
    pooling: Pooling = "cls"
    pad_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_single_stack()
        for name in ("type_vocab_size", "num_labels"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"config field '{name}' = {getattr(self, name)!r}: must be >= 0 (0 = none)"
                )


Mixer = Literal["attention", "pooling"]
VisionPositional = Literal["learned", "sinusoidal"]


@dataclass(frozen=True)
class VisionConfig(_FamilyConfig):
    """A Vision Transformer (ViT, Dosovitskiy et al. 2021; `arch` "vision"): an image cut into
    patches, each patch a token, the pre-LN encoder stack, a classification head. Defaults are
    ViT-B/16 at 224×224 (timm `vit_base_patch16_224`'s switches: pre-LN, erf-GELU, learned
    positions, a [CLS] token, LayerNorm ε 1e-6). With `mixer` "pooling" every block mixes
    tokens by average pooling over the 2-D grid instead of attention (PoolFormer, Yu et al.
    2022: "MetaFormer Is Actually What You Need for Vision")."""

    arch: ClassVar[str] = "vision"

    image_size: int = 224  # square images, height = width, in pixels
    patch_size: int = 16  # square patches: (image_size / patch_size)² tokens
    channels: int = 3  # 3 for RGB, 1 for grey images
    n_layers: int = 12
    layer: LayerConfig = field(
        default_factory=lambda: LayerConfig(
            d_model=768, n_heads=12, d_ff=3072, activation="gelu", norm_first=True,
            layer_norm_eps=1e-6, dropout=0.0,
        )
    )  # fmt: skip
    #: learned (ViT) or fixed 2-D sinusoids (half the features encode the row, half the
    #: column; MAE); both are interpolated when the image size changes.
    positional: VisionPositional = "learned"
    #: What the head reads: "cls" = the [CLS] token's final vector (ViT); "mean" = the mean of
    #: the patch tokens' (global average pooling, no [CLS] token).
    pooling: Pooling = "cls"
    #: Each block's token mixer: self-attention (ViT), or pooling (PoolFormer; needs "mean").
    mixer: Mixer = "attention"
    pool_size: int = 3  # the pooling mixer's window, pool_size × pool_size, stride 1
    num_labels: int = 1000  # classes of the head (ImageNet-1k)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field_types(self, "config field")

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"config field '{name}' = {getattr(self, name)!r}: {why}")

        for name in ("image_size", "patch_size", "channels", "n_layers", "num_labels"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        if self.image_size % self.patch_size:
            raise bad("patch_size", f"must divide image_size = {self.image_size}")
        if self.pool_size < 1 or self.pool_size % 2 == 0:
            raise bad("pool_size", "must be odd (a window centred on each token), e.g. 3")
        if self.mixer == "pooling" and self.pooling != "mean":
            raise bad(
                "mixer",
                "pooling mixes only the patch grid, so a [CLS] token would never see the "
                "image: use pooling 'mean'",
            )
        if self.positional == "sinusoidal" and self.d_model % 4:
            raise bad("positional", f"2-D sinusoids need d_model divisible by 4 ({self.d_model})")

    @property
    def grid(self) -> int:
        """Patches per side: the token grid is grid × grid."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Tokens the encoder sees: the patches, plus [CLS] with pooling "cls"."""
        return self.grid**2 + (self.pooling == "cls")


#: Every family's config class by its `arch` name (a plain dict: adding a family is one line).
CONFIGS: dict[str, type[_FamilyConfig]] = {
    ModelConfig.arch: ModelConfig,
    DecoderOnlyConfig.arch: DecoderOnlyConfig,
    EncoderOnlyConfig.arch: EncoderOnlyConfig,
    VisionConfig.arch: VisionConfig,
}


def load_config(path: str | os.PathLike) -> _FamilyConfig:
    """The config in a `config.json` of any family, as its own class (by `arch`)."""
    data = read_json_object(path, "config file")
    arch = data.get("arch", "encoder_decoder")
    if arch not in CONFIGS:
        raise ConfigError(f"{path}: unknown arch {arch!r}; this aiayn knows {', '.join(CONFIGS)}")
    return CONFIGS[arch].from_dict(data, source=str(path))
