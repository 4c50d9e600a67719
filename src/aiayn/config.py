"""Model configuration: a typed, frozen dataclass saved with every model as `config.json`.

Defaults are the paper's base model (Vaswani et al. 2017, Table 3, row "base"). The JSON file
carries a schema version so an old model directory either loads or fails with a clear message,
never silently with the wrong meaning.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text, read_json_object

#: Bump when a field changes meaning or is removed; adding a field with a default does not.
SCHEMA_VERSION = 1

Positional = Literal["sinusoidal", "learned", "rope", "none"]
Activation = Literal["relu", "gelu"]
Tying = Literal["none", "decoder", "all"]
AttentionImpl = Literal["auto", "sdpa", "math"]


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of an encoder-decoder Transformer.

    Every field has the paper's value for the base model as its default.
    """

    src_vocab_size: int = 37000  # §5.1: shared source-target BPE vocabulary of ~37k tokens
    tgt_vocab_size: int = 37000
    d_model: int = 512  # §3: all sub-layers and embeddings produce outputs of dimension 512
    n_heads: int = 8  # §3.2.2: h = 8 parallel attention heads
    d_ff: int = 2048  # §3.3: inner layer of the position-wise feed-forward network
    n_encoder_layers: int = 6  # §3.1: N = 6
    n_decoder_layers: int = 6  # §3.1: N = 6
    dropout: float = 0.1  # §5.4: P_drop = 0.1 on sub-layer outputs and embeddings + positions
    attention_dropout: float = 0.0  # not in the paper; tensor2tensor later added it
    activation_dropout: float = 0.0  # not in the paper: on the FFN's inner activations
    activation: Activation = "relu"  # §3.3: FFN(x) = max(0, xW1 + b1)W2 + b2
    norm_first: bool = False  # False = post-LN, the paper's LayerNorm(x + Sublayer(x)) (§3.1)
    layer_norm_eps: float = 1e-5
    positional: Positional = "sinusoidal"  # §3.5; "learned" performed nearly identically
    max_len: int = 1024  # longest sequence for learned positions (sinusoidal extrapolates)
    tie_embeddings: Tying = "all"  # §3.4: source emb = target emb = pre-softmax projection
    pad_id: int = 0
    # "math" is the reference path that can return weights; "sdpa" PyTorch's fused kernel;
    # "auto" the faster of the two where it runs (math for CPU half-precision training).
    attention_impl: AttentionImpl = "auto"
    # Not in the paper. Local self-attention: each position attends only to positions at most
    # this far away (causal in the decoder); None = full attention (the paper). Cross-attention
    # always sees the whole source.
    attention_window: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. preset name)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"config field '{name}' = {getattr(self, name)!r}: {why}")

        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise bad(name, "must be a non-negative integer")
        window = self.attention_window
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
            raise bad("attention_window", "must be an integer >= 1, or None for full attention")
        if window is not None and window < 1:
            raise bad("attention_window", "must be >= 1, or None for full attention")
        if self.d_model % self.n_heads:
            raise bad("d_model", f"must be divisible by n_heads = {self.n_heads}")
        if self.positional == "rope" and (self.d_model // self.n_heads) % 2:
            raise bad("positional", "rope needs an even head dimension (d_model / n_heads)")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "must be in [0, 1)")
        choices = {
            "activation": Activation,
            "positional": Positional,
            "tie_embeddings": Tying,
            "attention_impl": AttentionImpl,
        }
        for name, literal in choices.items():
            if getattr(self, name) not in literal.__args__:
                raise bad(name, f"must be one of {', '.join(literal.__args__)}")
        if self.tie_embeddings == "all" and self.src_vocab_size != self.tgt_vocab_size:
            raise bad(
                "tie_embeddings",
                "'all' shares one embedding across languages, so src_vocab_size must equal "
                "tgt_vocab_size; use 'decoder' for separate vocabularies",
            )
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise bad("pad_id", "must be a valid token id in both vocabularies")

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / h (§3.2.2)."""
        return self.d_model // self.n_heads

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # --- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        data = dict(data)
        version = data.pop("schema_version", None)
        if version is None:
            raise ConfigError(f"{source}: missing 'schema_version'; is this an aiayn config?")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"{source}: schema_version {version} is not supported by this aiayn "
                f"(expects {SCHEMA_VERSION}); upgrade aiayn or re-export the model"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; check spelling")
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except TypeError as err:  # e.g. a list where an int belongs
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write `config.json` atomically (never leaves a half-written file)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        data = read_json_object(path, "config file")
        return cls.from_dict(data, source=str(path))
