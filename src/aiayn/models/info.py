"""What a model is made of: parameters by component, FLOPs per token, and a shape trace.

For every family: `parameter_breakdown` walks the model's stacks, `flops_per_token` and
`trace_shapes` pick the family's formula and sample inputs by `arch` (plain dicts at the end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from aiayn.config import DecoderOnlyConfig, EncoderOnlyConfig, ModelConfig, VisionConfig
from aiayn.models.serialization import ARCHITECTURES
from aiayn.nn.stack import Stack
from aiayn.nn.trace import TraceStep, shape_trace

AnyConfig = ModelConfig | DecoderOnlyConfig | EncoderOnlyConfig | VisionConfig
#: Attributes that hold a model's output heads, counted together as "output".
_HEADS = ("generator", "mlm", "pooler", "classifier")


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Unique parameters per component of a model of any family: "embeddings" (every stack's
    token embedding and positions; a tied matrix counted once, here), one entry per stack by
    its name ("encoder", "decoder"), "output" (0 when tied), "other" if anything is left,
    and "total"."""
    seen: set[int] = set()

    def count(*modules: nn.Module | None) -> int:
        total = 0
        for module in modules:
            for p in module.parameters() if module is not None else ():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total

    stacks = [m for m in model.children() if isinstance(m, Stack)]
    embeddings = [m for st in stacks for m in (st.embed, st.positional, st.embed_norm)]
    parts = {"embeddings": count(*embeddings, getattr(model, "segments", None))}
    for st in stacks:
        parts[st.name] = count(st.layers, st.norm)
    parts["output"] = count(*(getattr(model, name, None) for name in _HEADS))
    other = count(model)
    if other:
        parts["other"] = other
    parts["total"] = sum(parts.values())
    return parts


@dataclass(frozen=True)
class FlopEstimate:
    """Matmul FLOPs (a multiply-add = 2) of one sentence pair, as nanoGPT and PaLM count them.

    A decoder-only model has no source: src_len and encoder are 0, tgt_len is the sequence.
    """

    src_len: int
    tgt_len: int
    encoder: int
    decoder: int
    output: int

    @property
    def forward(self) -> int:
        return self.encoder + self.decoder + self.output

    @property
    def forward_per_tgt_token(self) -> float:
        return self.forward / self.tgt_len

    @property
    def train_per_tgt_token(self) -> float:
        """Forward + backward ≈ 3 × forward (the backward pass does two matmuls per forward one)."""
        return 3 * self.forward_per_tgt_token

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "forward": self.forward,
            "forward_per_tgt_token": self.forward_per_tgt_token,
            "train_per_tgt_token": self.train_per_tgt_token,
        }


def _projections(cfg: AnyConfig, n: int) -> int:
    """One D×D linear map over n positions."""
    return 2 * n * cfg.d_model * cfg.d_model


def _ffn(cfg: AnyConfig, n: int) -> int:
    """W1 (D×F) and W2 (F×D) over n positions."""
    return 2 * 2 * n * cfg.d_model * cfg.layer.d_ff


def _attend(cfg: AnyConfig, q: int, k: int) -> int:
    """QKᵀ and weights·V of q queries over k keys, all heads together."""
    return 2 * 2 * q * k * cfg.d_model


def estimate_flops(cfg: ModelConfig, src_len: int = 32, tgt_len: int = 32) -> FlopEstimate:
    """Forward matmul FLOPs for a source of `src_len` and a target of `tgt_len` tokens.

    Masked (causal) scores are counted as computed, since dense kernels compute them.
    """
    S, T = src_len, tgt_len
    encoder_layer = 4 * _projections(cfg, S) + _attend(cfg, S, S) + _ffn(cfg, S)
    decoder_layer = (
        4 * _projections(cfg, T)  # self-attention Q, K, V, O
        + _attend(cfg, T, T)
        + 2 * _projections(cfg, T)  # cross-attention Q, O on target positions
        + 2 * _projections(cfg, S)  # cross-attention K, V on the encoder output
        + _attend(cfg, T, S)
        + _ffn(cfg, T)
    )
    return FlopEstimate(
        src_len=S,
        tgt_len=T,
        encoder=cfg.n_encoder_layers * encoder_layer,
        decoder=cfg.n_decoder_layers * decoder_layer,
        output=2 * T * cfg.d_model * cfg.tgt_vocab_size,
    )


def estimate_lm_flops(cfg: DecoderOnlyConfig, seq_len: int = 32) -> FlopEstimate:
    """Forward matmul FLOPs of a decoder-only model over `seq_len` tokens (teacher forcing).

    Each layer: Q, K, V, O projections, QKᵀ and weights·V over the whole (T, T) square (dense
    kernels compute the masked half too; a sliding window would compute less), the FFN; then
    the logits. The token and position lookups are not matmuls.
    """
    T = seq_len
    layer = 4 * _projections(cfg, T) + _attend(cfg, T, T) + _ffn(cfg, T)
    return FlopEstimate(
        src_len=0,
        tgt_len=T,
        encoder=0,
        decoder=cfg.n_layers * layer,
        output=2 * T * cfg.d_model * cfg.vocab_size,
    )


def estimate_encoder_flops(cfg: EncoderOnlyConfig, seq_len: int = 32) -> FlopEstimate:
    """Forward matmul FLOPs of an encoder-only model over `seq_len` tokens with its masked-LM
    head at every position (the head's D×D transform and the vocabulary logits): what a
    pretraining step computes. (BERT implementations that score only the masked 15% spend
    less on the head.)"""
    T = seq_len
    layer = 4 * _projections(cfg, T) + _attend(cfg, T, T) + _ffn(cfg, T)
    return FlopEstimate(
        src_len=T,
        tgt_len=T,
        encoder=cfg.n_layers * layer,
        decoder=0,
        output=_projections(cfg, T) + 2 * T * cfg.d_model * cfg.vocab_size,
    )


def estimate_vision_flops(cfg: VisionConfig, length: int = 0) -> FlopEstimate:
    """Forward matmul FLOPs of a ViT on one image of the config's size (`length` is ignored:
    an image's token count is fixed, (image_size / patch_size)² + [CLS]): the patch
    projection, each layer's Q, K, V, O and attention over all tokens (none with the pooling
    mixer, whose averages are no matmuls) and FFN, the head. Per token: divided by T."""
    T = cfg.num_tokens
    mixing = 4 * _projections(cfg, T) + _attend(cfg, T, T) if cfg.mixer == "attention" else 0
    patch_in = cfg.channels * cfg.patch_size**2
    return FlopEstimate(
        src_len=T,
        tgt_len=T,
        encoder=2 * cfg.grid**2 * patch_in * cfg.d_model + cfg.n_layers * (mixing + _ffn(cfg, T)),
        decoder=0,
        output=2 * cfg.d_model * cfg.num_labels,
    )


def flops_per_token(cfg: AnyConfig, length: int = 32) -> FlopEstimate:
    """The FLOP estimate of a model of any family, sequences of `length` tokens (the source
    and the target both, for an encoder-decoder)."""
    return _FLOPS[cfg.arch](cfg, length)


def estimate_decode_flops(cfg: ModelConfig, src_len: int, out_len: int, beam: int = 1) -> int:
    """Matmul FLOPs of translating one sentence with a KV cache, `out_len` steps of `beam` rows.

    What the work needs however an engine does it: the encoder and the cross-attention K/V
    once per sentence; each step of each beam: projections and FFN of one position, attention
    over the keys so far and over the source, logits of that position.
    """
    S = src_len
    cross_kv = cfg.n_decoder_layers * 2 * _projections(cfg, S)  # K, V of the encoder output
    per_sentence = estimate_flops(cfg, S, 1).encoder + cross_kv
    per_row = sum(
        cfg.n_decoder_layers
        * (
            6 * _projections(cfg, 1)  # self-attention Q, K, V, O; cross-attention Q, O
            + _attend(cfg, 1, t)
            + _attend(cfg, 1, S)
            + _ffn(cfg, 1)
        )
        + 2 * cfg.d_model * cfg.tgt_vocab_size
        for t in range(1, out_len + 1)
    )
    return per_sentence + beam * per_row


def trace_shapes(cfg: AnyConfig, batch: int = 2, src_len: int = 7, tgt_len: int = 5):
    """Every traced tensor shape of one teacher-forced forward pass on a random batch, for a
    model of any family (`tgt_len`: the sequence of a decoder-only model, which has no source).

    Uses the reference ("math") attention so that scores and weights appear as tensors.
    """
    cfg = cfg.replace(attention_impl="math")
    with torch.device("meta"):  # shapes only: no memory, no compute, even for `big`
        model = ARCHITECTURES[cfg.arch](cfg).eval()
        with shape_trace(model) as steps, torch.no_grad():
            _SAMPLE_FORWARD[cfg.arch](model, batch, src_len, tgt_len)
    return list(steps)


def format_trace(steps: list[TraceStep], first_layer_only: bool = True) -> list[str]:
    """Readable lines; by default layers after the first are elided (they repeat the first)."""
    lines = []
    for step in steps:
        if first_layer_only and ".layers." in step.module:
            index = step.module.split(".layers.")[1].split(".")[0]
            if index != "0":
                continue
        shape = "(" + ", ".join(map(str, step.shape)) + ")"
        lines.append(f"{step.module:<34} {step.name:<38} {shape}")
    return lines


def _ids(batch: int, length: int) -> Tensor:
    return torch.zeros(batch, length, dtype=torch.long)


#: Each family's FLOP formula and teacher-forced sample pass, by `arch` (plain dicts: a new
#: family adds one line to each).
_FLOPS: dict[str, Callable[[AnyConfig, int], FlopEstimate]] = {
    "encoder_decoder": lambda cfg, n: estimate_flops(cfg, n, n),
    "decoder_only": estimate_lm_flops,
    "encoder_only": estimate_encoder_flops,
    "vision": estimate_vision_flops,
}
_SAMPLE_FORWARD: dict[str, Callable[[nn.Module, int, int, int], Tensor]] = {
    "encoder_decoder": lambda model, B, S, T: model(_ids(B, S), _ids(B, T)),
    "decoder_only": lambda model, B, S, T: model(_ids(B, T)),
    "encoder_only": lambda model, B, S, T: model(_ids(B, T) + 1),  # id 0 is padding
    # an image of the config's size: its token count is fixed (S and T do not apply)
    "vision": lambda model, B, S, T: model(
        torch.zeros(B, model.config.channels, model.config.image_size, model.config.image_size)
    ),
}
