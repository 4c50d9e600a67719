"""Export an aiayn encoder-decoder Transformer to a CTranslate2 model directory.

    export_ctranslate2("runs/multi30k", "runs/multi30k-ct2", quantization="int8")

    translator = ctranslate2.Translator("runs/multi30k-ct2", device="cpu")
    tokens = tokenizers.source.tokenize("Ein Mann läuft.")  # no </s>: CT2 appends it
    limit = min(len(tokens) + 1 + 50, config.max_len)        # aiayn's: source + </s> + 50
    result = translator.translate_batch([tokens], **decoding_options(limit, beam_size=1))
    tokenizers.target.decode([tokenizers.target.token_to_id(t) for t in result[0].hypotheses[0]])

The CTranslate2 spec is filled from our weights directly (no Hugging Face detour). What the
mapping has to get right, because CTranslate2 differs from aiayn there:

- self-attention takes one fused [W_Q; W_K; W_V] projection and cross-attention a fused
  [W_K; W_V]; aiayn keeps four separate `nn.Linear`s, so they are concatenated row-wise;
- CTranslate2's built-in sinusoids are laid out [sin…, cos…], start at position 1 and use
  tensor2tensor's timescales; ours interleave sin/cos from position 0 (§3.5), so our own table
  is stored as the position encodings (as for learned positions). Positions therefore stop
  at `max_len`: sources and outputs must stay within it (aiayn's translator cuts there too);
- post-LN (`norm_first=False`) is CTranslate2's `pre_norm=False`, whose per-sub-layer norm
  comes after the residual add; pre-LN adds the final encoder/decoder norms;
- the √d_model embedding scale (§3.4) is `scale_embeddings`; the layer-norm epsilon goes into
  CTranslate2's `config.json`;
- the output projection has no bias; tied matrices are written once (CTranslate2 aliases
  equal variables);
- CTranslate2 speaks token strings: the vocabularies come from the model directory's
  tokenizer file(s), or are made up for a bare model ("<pad>", "<s>", "</s>", "<unk>" at
  their ids, "t{id}" elsewhere). aiayn sources end with </s>, so the export sets
  `add_source_eos` and callers pass the source tokens without it.

Decoding the way aiayn does also needs a few translate options (`decoding_options`):
CTranslate2 never bans <pad>/<s> by itself, holds </s> back for one step by default
(`min_decoding_length=1`) and has no GNMT length penalty (see `decoding_options`).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aiayn.config import ModelConfig
from aiayn.errors import ConfigError
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.serialization import load_pretrained, require_arch
from aiayn.nn.positional import sinusoid_table
from aiayn.tokenizers import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    SHARED_FILE,
    SOURCE_FILE,
    TARGET_FILE,
    UNK,
    UNK_ID,
    TokenizerPair,
)

if TYPE_CHECKING:
    from ctranslate2.specs import TransformerSpec

#: Positional schemes CTranslate2 can run: a table added to the scaled embeddings.
SUPPORTED_POSITIONAL = ("sinusoidal", "learned", "none")

#: What aiayn's decoders never generate, as CTranslate2's `suppress_sequences`.
SUPPRESS_SEQUENCES = [[PAD], [BOS]]


def export_ctranslate2(
    model_or_dir: EncoderDecoder | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    quantization: str | None = None,
    force: bool = False,
) -> Path:
    """Write `model_or_dir` as a CTranslate2 model directory `out_dir`; return its path.

    `model_or_dir` is a model object (its vocabularies are made up: "<pad>", "<s>", "</s>",
    "<unk>" at their ids, "t{id}" for every other id) or an aiayn model directory, whose
    tokenizer file(s) give the token strings and are copied into `out_dir` too.
    `quantization` is CTranslate2's weight type ("int8", "int8_float16", "float16", …; None
    keeps float32). The directory is built beside `out_dir` and renamed into place, so a
    failed export leaves nothing half-written; an existing non-empty `out_dir` is replaced
    only with `force=True`.

    Raises:
        ImportError: ctranslate2 is not installed.
        ValueError: the model uses something CTranslate2 cannot run (e.g. rope positions),
            or `quantization` is not a CTranslate2 type.
        FileExistsError: `out_dir` exists and is not empty (without `force`), or is a file.
        ConfigError / DataError: the model directory or its tokenizer cannot be loaded.
    """
    try:
        import ctranslate2  # noqa: F401  (optional dependency: only the export needs it)
    except ImportError:
        raise ImportError(
            "exporting to CTranslate2 needs the ctranslate2 package: pip install ctranslate2"
        ) from None

    out_dir = Path(out_dir)
    _check_destination(out_dir, force)
    if isinstance(model_or_dir, EncoderDecoder):
        model, tokenizer_files = model_or_dir, []
        src_vocab = tgt_vocab = None
    else:
        model_dir = Path(model_or_dir)
        if out_dir.resolve() in (model_dir.resolve(), *model_dir.resolve().parents):
            raise ValueError(f"{out_dir} would replace the model directory {model_dir}")
        require_arch(model_dir, "encoder_decoder")  # CTranslate2's TransformerSpec
        model = load_pretrained(model_dir)
        src_vocab, tgt_vocab, tokenizer_files = _directory_vocabularies(model_dir, model.config)
    cfg = model.config
    _check_supported(cfg)
    if src_vocab is None:
        src_vocab = _made_up_vocabulary(cfg.src_vocab_size, cfg.pad_id)
        tgt_vocab = _made_up_vocabulary(cfg.tgt_vocab_size, cfg.pad_id)

    spec = build_spec(model)
    spec.register_source_vocabulary(src_vocab)
    spec.register_target_vocabulary(tgt_vocab)
    for path in tokenizer_files:
        spec.register_file(str(path))
    spec.validate()
    spec.optimize(quantization=quantization)  # also rejects an unknown quantization name
    _save_atomically(spec, out_dir)
    return out_dir


def build_spec(model: EncoderDecoder) -> TransformerSpec:
    """The CTranslate2 `TransformerSpec` of `model`, weights filled, vocabularies not yet."""
    from ctranslate2.specs import TransformerSpec, common_spec

    cfg = model.config
    _check_supported(cfg)
    activation = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU}
    spec = TransformerSpec.from_config(
        (cfg.n_encoder_layers, cfg.n_decoder_layers),
        cfg.n_heads,
        pre_norm=cfg.layer.norm_first,  # pre-LN also brings the final encoder/decoder LayerNorms
        activation=activation[cfg.layer.activation],  # GELU = exact erf form, as F.gelu
    )
    # Config: special tokens as in aiayn.tokenizers; sources end with </s> (appended by CT2).
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = UNK, BOS, EOS
    spec.config.decoder_start_token = BOS
    spec.config.add_source_bos = False
    spec.config.add_source_eos = True
    spec.config.layer_norm_epsilon = float(cfg.layer.layer_norm_eps)

    enc, dec = model.encoder, model.decoder
    # Encoder: embeddings × √d_model (§3.4) + positions, then the layers.
    spec.encoder.embeddings[0].weight = _np(enc.embed.weight)
    spec.encoder.scale_embeddings = True
    spec.encoder.position_encodings.encodings = _position_table(enc, cfg)
    for layer_spec, layer in zip(spec.encoder.layer, enc.layers, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attn, layer.res_self.norm, True)
        _set_ffn(layer_spec.ffn, layer.ffn, layer.res_ffn.norm)
    if enc.norm is not None:
        _set_layer_norm(spec.encoder.layer_norm, enc.norm)

    spec.decoder.embeddings.weight = _np(dec.embed.weight)
    spec.decoder.scale_embeddings = True
    spec.decoder.position_encodings.encodings = _position_table(dec, cfg)
    for layer_spec, layer in zip(spec.decoder.layer, dec.layers, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attn, layer.res_self.norm, True)
        _set_attention(layer_spec.attention, layer.cross_attn, layer.res_cross.norm, False)
        _set_ffn(layer_spec.ffn, layer.ffn, layer.res_ffn.norm)
    if dec.norm is not None:
        _set_layer_norm(spec.decoder.layer_norm, dec.norm)
    spec.decoder.projection.weight = _np(model.generator.weight)  # no bias (§3.4)
    return spec


def decoding_options(
    max_decoding_length: int, beam_size: int = 4, length_penalty: float = 0.0
) -> dict[str, Any]:
    """`Translator.translate_batch` keywords that decode like `aiayn.decode.generate`.

    `max_decoding_length` is aiayn's per-sentence limit, counting </s>: the source length
    with its </s> + `extra_len` (50), capped at `max_len`. CTranslate2 takes one limit per
    call, so batch sentences of equal length, or cut longer outputs afterwards.

    Greedy (`beam_size=1`) then gives aiayn's outputs exactly, and beam search with
    `length_penalty=0` those of aiayn's `alpha=0`. CTranslate2 has no GNMT penalty: its
    `length_penalty` α divides log P by |Y|^α instead of ((5 + |Y|) / 6)^α (|Y| counts </s>
    in both) and it stops once `beam_size` hypotheses have finished, not by aiayn's exact
    bound, so against aiayn's alpha = 0.6 it picks the same output often, not always.
    Suppressing <pad>/<s> happens before CTranslate2's log-softmax (aiayn bans them after
    it), so CT2's beam scores are renormalised over the other tokens: the same outputs
    barring near-ties, scores a little higher.
    """
    return dict(
        beam_size=beam_size,
        length_penalty=length_penalty,
        max_decoding_length=max_decoding_length,
        min_decoding_length=0,  # CT2's default 1 would forbid an immediate </s>
        suppress_sequences=SUPPRESS_SEQUENCES,  # aiayn never generates <pad> or <s>
    )


# --- checks ---------------------------------------------------------------------------------


def _check_supported(cfg: ModelConfig) -> None:
    if cfg.positional not in SUPPORTED_POSITIONAL:
        raise ValueError(
            f"config field 'positional' = {cfg.positional!r}: CTranslate2 export supports "
            f"{', '.join(SUPPORTED_POSITIONAL)} positions only (CTranslate2's Transformer "
            "adds a position table to the embeddings)"
        )
    if cfg.layer.attention_window is not None:
        raise ValueError(
            f"config field 'attention_window' = {cfg.layer.attention_window!r}: CTranslate2 export "
            "supports full self-attention only (attention_window = None)"
        )
    if cfg.layer.d_k is not None and cfg.layer.d_k != cfg.layer.head_dim:
        raise ValueError(
            f"config field 'd_k' = {cfg.layer.d_k!r}: CTranslate2 export needs queries and keys "
            f"as wide as values (d_k = d_model / n_heads = {cfg.layer.head_dim})"
        )
    if cfg.layer.norm != "layer":
        raise ValueError(
            f"config field 'norm' = {cfg.layer.norm!r}: CTranslate2 export supports LayerNorm "
            "only (norm = 'layer')"
        )


def _check_destination(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass force=True to replace it")


# --- weights --------------------------------------------------------------------------------


def _np(t: torch.Tensor) -> Any:
    """A float32 numpy copy (numpy has no bfloat16; quantization happens in CT2's optimize)."""
    return t.detach().to("cpu", torch.float32).numpy().copy()


def _set_linear(spec: Any, *linears: torch.nn.Linear) -> None:
    """One CT2 linear from one or more of ours, stacked along the output dimension."""
    spec.weight = _np(torch.cat([lin.weight for lin in linears], dim=0))  # (out, in)
    if linears[0].bias is not None:
        spec.bias = _np(torch.cat([lin.bias for lin in linears], dim=0))


def _set_layer_norm(spec: Any, norm: torch.nn.LayerNorm) -> None:
    spec.gamma = _np(norm.weight)
    spec.beta = _np(norm.bias)


def _set_attention(spec: Any, attn: Any, norm: torch.nn.LayerNorm, self_attention: bool) -> None:
    """CT2 wants [W_Q; W_K; W_V] fused for self-attention, Q and [W_K; W_V] for cross."""
    if self_attention:
        _set_linear(spec.linear[0], attn.w_q, attn.w_k, attn.w_v)
    else:
        _set_linear(spec.linear[0], attn.w_q)
        _set_linear(spec.linear[1], attn.w_k, attn.w_v)
    _set_linear(spec.linear[-1], attn.w_o)
    _set_layer_norm(spec.layer_norm, norm)  # before (pre-LN) or after (post-LN) the residual


def _set_ffn(spec: Any, ffn: Any, norm: torch.nn.LayerNorm) -> None:
    _set_linear(spec.linear_0, ffn.w_1)
    _set_linear(spec.linear_1, ffn.w_2)
    _set_layer_norm(spec.layer_norm, norm)


def _position_table(side: Any, cfg: ModelConfig) -> Any:
    """(max_len, d_model): what `side` (our Encoder or Decoder) adds at positions 0, 1, ….

    CT2's built-in sinusoids differ ([sin…, cos…] halves, from position 1, t2t timescales),
    so even the fixed table is written out.
    """
    if cfg.positional == "learned":
        return _np(side.positional.weight)  # encoder and decoder each learn their own
    if cfg.positional == "sinusoidal":
        return _np(sinusoid_table(cfg.max_len, cfg.d_model))
    return _np(torch.zeros(cfg.max_len, cfg.d_model))  # "none": nothing is added


# --- vocabularies ---------------------------------------------------------------------------


def _made_up_vocabulary(size: int, pad_id: int) -> list[str]:
    """Token strings for a model without a tokenizer: the special tokens at aiayn's ids
    (padding at the config's `pad_id`), "t{id}" for the rest."""
    specials = {pad_id: PAD, BOS_ID: BOS, EOS_ID: EOS, UNK_ID: UNK}
    if len(specials) < 4 or size <= max(specials):
        raise ValueError(
            f"a model without a tokenizer needs <pad> (pad_id = {pad_id}), <s> ({BOS_ID}), "
            f"</s> ({EOS_ID}) and <unk> ({UNK_ID}) at distinct ids below its vocabulary size "
            f"{size}; export its model directory with a tokenizer instead"
        )
    return [specials.get(i, f"t{i}") for i in range(size)]


def _directory_vocabularies(
    model_dir: Path, cfg: ModelConfig
) -> tuple[list[str] | None, list[str] | None, list[Path]]:
    """Source and target token strings from the directory's tokenizer file(s) (None, None
    when it has none), and those files."""
    files = [model_dir / n for n in (SHARED_FILE, SOURCE_FILE, TARGET_FILE)]
    files = [f for f in files if f.is_file()]
    if not files:
        return None, None, []
    pair = TokenizerPair.load(model_dir)
    src = _tokenizer_vocabulary(pair.source, cfg.src_vocab_size, "source", "src_vocab_size")
    tgt = _tokenizer_vocabulary(pair.target, cfg.tgt_vocab_size, "target", "tgt_vocab_size")
    return src, tgt, files


def _tokenizer_vocabulary(tokenizer: Any, size: int, side: str, field_name: str) -> list[str]:
    """The tokenizer's strings by id, padded with unused names up to the model's `size`."""
    n = tokenizer.vocab_size
    if n > size:
        raise ConfigError(f"{side} tokenizer has {n} tokens but the model's {field_name} is {size}")
    tokens = [tokenizer.id_to_token(i) for i in range(n)]
    taken = set(tokens)
    if None in taken or len(taken) != n:
        raise ConfigError(f"{side} tokenizer does not map its ids 0..{n - 1} to distinct tokens")
    for i in range(n, size):  # ids the model has but the tokenizer never produces
        name = f"<unused{i}>"
        while name in taken:
            name = f"<{name}>"
        tokens.append(name)
        taken.add(name)
    return tokens


# --- writing --------------------------------------------------------------------------------


def _save_atomically(spec: Any, out_dir: Path) -> None:
    """Save into a fresh directory beside `out_dir`, then rename it into place.

    An existing `out_dir` (empty, or replaced under `force`) is renamed aside first and
    deleted after, so `out_dir` always holds a complete model or none (it is briefly absent).
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{secrets.token_hex(4)}"
    tmp = out_dir.with_name(f".{out_dir.name}.{tag}.tmp")
    old = out_dir.with_name(f".{out_dir.name}.{tag}.old")
    tmp.mkdir()
    try:
        spec.save(str(tmp))
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        if old.exists() and not out_dir.exists():
            old.rename(out_dir)  # put the previous model back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
