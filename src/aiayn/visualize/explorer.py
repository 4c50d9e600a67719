"""The attention explorer's data: every layer's and head's attention weights of one input, for
any family, as the model computes them (`aiayn attention`; the page is `explorer_page`).

Models run SDPA, which never materialises the weights, so the weights come from a second pass
through the reference path (`need_weights=True`: eq. 1 written out, `aiayn.nn.attention`).
`attention_maps` runs both passes and measures, block by block, how far the reference path's
outputs are from the fast path's: the page shows that number, and the tests hold it near 0.

    exploration = explore("runs/demo/model", "three hundred forty-two")
    exploration.kinds[0].weights  # (layers, heads, T, S), rows summing to 1

One collector for every family, through the interfaces the models already have (the model
decides what "its attention" is):

    encoder-decoder  encoder self-, decoder self- and cross-attention of the beam search's
                     output, teacher-forced; the search itself as a tree (`BeamTree`)
    decoder-only     causal self-attention over the text
    encoder-only     self-attention over [CLS] text [SEP] (pair [SEP]); the predicted label
    vision           self-attention over [CLS] and patches, and its rollout over the image;
                     PoolFormer's pooling as the fixed weights it mixes tokens with
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from aiayn.errors import ConfigError
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.vision import VisionTransformer
from aiayn.nn.block import Block
from aiayn.nn.pooling_mixer import PoolingMixer

Maps = dict[str, list[Tensor]]  # kind -> per-layer weights [(B, H, T, S)]

#: Titles of the kinds of attention, in the order the page shows them.
TITLES = {
    "encoder_self": "encoder self-attention",
    "decoder_self": "decoder self-attention (causal)",
    "decoder_cross": "decoder cross-attention (target → source)",
    "self": "self-attention",
    "causal_self": "self-attention (causal)",
    "pooling": "pooling mixer (fixed weights: the same for every layer and input)",
}


@dataclass
class AttentionKind:
    """One kind of attention of one input: queries (rows) attend to keys (columns)."""

    key: str  # a key of TITLES
    weights: Tensor  # (L, H, T, S) float32, each row sums to 1
    queries: list[str]  # T token labels
    keys: list[str]  # S token labels

    @property
    def title(self) -> str:
        return TITLES[self.key]


@dataclass
class Exploration:
    """Everything the explorer shows about one input."""

    arch: str
    model: str  # the model directory
    summary: list[str]  # lines: the input and what the model made of it
    kinds: list[AttentionKind]
    parity: list[tuple[str, float]]  # (block, max |reference − fast| of its output)
    rollout: Tensor | None = None  # (g, g) in [0, 1]: ViT's attention rollout
    image: Tensor | None = None  # (C, S, S) uint8: the image, for vision models
    beam: list[dict] = field(default_factory=list)  # BeamNode dicts with `text`, translation


# --- the two passes ---------------------------------------------------------------------------


def passes(model: nn.Module, inputs: tuple) -> tuple[Callable[[], object], Callable[[], Maps]]:
    """(fast pass, reference pass returning the weights) of `model` on `inputs`, the one
    place that knows each family's interface.

    inputs: encoder-decoder (src (B, S), tgt (B, T)); decoder-only (ids (B, T),);
    encoder-only (ids (B, T), segments (B, T) | None); vision (images (B, C, H, W),).
    """
    if isinstance(model, EncoderDecoder):
        src, tgt = inputs

        def maps() -> Maps:
            m = model.attention_maps(src, tgt)
            return {"encoder_self": m.encoder_self, "decoder_self": m.decoder_self,
                    "decoder_cross": m.decoder_cross}  # fmt: skip

        return lambda: model(src, tgt), maps
    if isinstance(model, DecoderOnly):
        (ids,) = inputs
        return lambda: model(ids), lambda: {"causal_self": model.attention_maps(ids)[1]}
    if isinstance(model, EncoderOnly):
        ids, segments = inputs
        return (
            lambda: model.encode(ids, segments),
            lambda: {"self": model.encode(ids, segments, need_weights=True)[2]},
        )
    if isinstance(model, VisionTransformer):
        (images,) = inputs

        def maps() -> Maps:
            weights = model.encode(images, need_weights=True)[1]
            if model.config.mixer == "pooling":  # no attention: the pooling's fixed weights
                n = (images.shape[-1] // model.config.patch_size) ** 2  # tokens of this size
                return {"pooling": _pooling_maps(model, n)}
            return {"self": weights}

        return lambda: model.encode(images), maps
    raise ConfigError(f"the attention explorer does not know {type(model).__name__} models")


@torch.inference_mode()
def attention_maps(model: nn.Module, inputs: tuple) -> tuple[Maps, list[tuple[str, float]]]:
    """Every layer's attention weights by the reference path, and per block the largest
    difference between its output in that pass and in the model's own (fast) pass.

    Shape: inputs as `passes` -> {kind: [(B, H, T, S)] per layer}, [(block name, diff)].
    """
    model.eval()
    fast, reference = passes(model, inputs)
    _, fast_blocks = _block_outputs(model, fast)
    maps, ref_blocks = _block_outputs(model, reference)
    parity = [
        (name, float((ref_blocks[name] - out).abs().max())) for name, out in fast_blocks.items()
    ]
    return maps, parity


def _block_outputs(model: nn.Module, run: Callable[[], object]) -> tuple[object, dict[str, Tensor]]:
    """run()'s result, and the output of every `Block` during it, by module name."""
    outputs: dict[str, Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, Block):

            def keep(module, args, out, name=name) -> None:
                outputs[name] = out[0].float()  # (B, T, D)

            handles.append(module.register_forward_hook(keep))
    try:
        return run(), outputs
    finally:
        for handle in handles:
            handle.remove()


def _pooling_maps(model: VisionTransformer, n: int) -> list[Tensor]:
    """PoolFormer's token mixing as a matrix: the mixer is linear and the same for every
    channel, so feeding it one-hot tokens reads its weights off. The block's pooling is
    AvgPool(x) − x; the identity is added back so the rows are the averaging weights.

    Shape: -> [(1, 1, n, n)] per layer, n = tokens on the grid.
    """
    weights = []
    for block in model.encoder.layers:
        mixer = block.self_attn
        assert isinstance(mixer, PoolingMixer)
        probe = torch.eye(n)[:, :, None]  # (N, N, 1): batch row s is token s alone
        out, _ = mixer(probe)  # (N, N, 1): out[s, t] = weight of token s in token t's output
        pooled = out[:, :, 0].T + torch.eye(n)  # (N, N): row t = token t's averaging weights
        weights.append(pooled[None, None])  # (1, 1, N, N)
    return weights


def stack_layers(per_layer: list[Tensor], row: int = 0) -> Tensor:
    """Shape: [(B, H, T, S)] per layer -> (L, H, T, S) of batch row `row`, float32 on CPU."""
    return torch.stack([w[row] for w in per_layer]).float().cpu()


# --- a model directory and an input -----------------------------------------------------------


def explore(
    model_dir: str | os.PathLike,
    text: str | None = None,
    pair: str | None = None,
    image: str | os.PathLike | None = None,
    beam: int = 4,
    alpha: float = 0.6,
    device: str = "cpu",
) -> Exploration:
    """Load the model in `model_dir` and collect its attention on one input: `text` (and a
    second text `pair` for an encoder) for text models, the `image` file for vision models.

    Raises:
        ConfigError: no model there, or an input the model does not take (the flag named).
    """
    from aiayn.models.serialization import arch_of

    home, arch = arch_of(model_dir)
    if arch == "vision":
        if image is None:
            raise ConfigError(f"{model_dir} is an image classifier: give --image FILE")
        if text is not None or pair is not None:
            raise ConfigError(f"{model_dir} is an image classifier: --text/--pair apply to text")
        return _explore_image(model_dir, image, device)
    if image is not None:
        raise ConfigError(f"--image: {model_dir} is a text model ({arch}); give --text")
    if text is None or not text.strip():
        raise ConfigError("--text: give a non-empty text to explore")
    if pair is not None and arch != "encoder_only":
        raise ConfigError(f"--pair applies to encoder-only (BERT) models, not {arch}")
    if arch == "encoder_decoder":
        return _explore_translation(model_dir, text, beam, alpha, device)
    if arch == "decoder_only":
        return _explore_lm(model_dir, text, device)
    return _explore_encoder(model_dir, home, text, pair, device)


def _kinds(maps: Maps, labels: dict[str, tuple[list[str], list[str]]]) -> list[AttentionKind]:
    return [
        AttentionKind(key, stack_layers(maps[key]), *labels[key]) for key in TITLES if key in maps
    ]


def _explore_translation(model_dir, text: str, beam: int, alpha: float, device) -> Exploration:
    from aiayn.decode.beam_tree import BeamTree
    from aiayn.decode.search import beam_search
    from aiayn.translator import load_translator

    if beam < 1:
        raise ConfigError(f"--beam {beam}: must be at least 1")
    model, tokenizers = load_translator(model_dir, device)
    src_tok, tgt_tok = tokenizers.source, tokenizers.target
    limit = model.config.max_len
    ids = src_tok.encode(text, add_eos=True)
    if len(ids) > limit:  # as `aiayn translate` does
        ids = [*ids[: limit - 1], src_tok.eos_id]
    src = torch.tensor([ids], device=model_device(model))  # (1, S)
    tree = BeamTree()
    # The same search `aiayn translate` runs (beam 1 there is greedy: alpha 0 makes it equal).
    hyps = beam_search(model, src, tgt_tok.bos_id, tgt_tok.eos_id, beam,
                       alpha if beam > 1 else 0.0, max_len=limit, recorder=tree)  # fmt: skip
    best = hyps[0][0]
    winner = tree.winner()
    out_ids = [tgt_tok.bos_id, *best.tokens]
    tgt = torch.tensor([out_ids], device=src.device)  # (1, T): <s> y_1 … y_n, teacher-forced
    maps, parity = attention_maps(model, (src, tgt))
    src_labels = [token_label(src_tok, i) for i in ids]
    tgt_labels = [token_label(tgt_tok, i) for i in out_ids]
    nodes = tree.as_dicts()
    for node in nodes:
        node["text"] = "<s>" if node["token"] is None else token_label(tgt_tok, node["token"])
    translation = tgt_tok.decode(best.tokens)
    summary = [
        f"source: {text}",
        f"translation (beam {beam}, α = {alpha if beam > 1 else 0.0}): {translation}",
        f"score {winner.score:.3f} = log P {best.log_prob:.3f} / lp(|Y| = {best.length})",
        "decoder rows: the decoder reading each token of the output, predicting the next",
    ]
    labels = {
        "encoder_self": (src_labels, src_labels),
        "decoder_self": (tgt_labels, tgt_labels),
        "decoder_cross": (tgt_labels, src_labels),
    }
    return Exploration("encoder_decoder", str(model_dir), summary, _kinds(maps, labels), parity,
                       beam=nodes)  # fmt: skip


def _explore_lm(model_dir, text: str, device) -> Exploration:
    from aiayn.generator import load_language_model

    model, tokenizer = load_language_model(model_dir, device)
    # Training puts the end-of-text token before every document: the model expects it first.
    ids = [tokenizer.bos_id, *tokenizer.encode(text)][-model.config.max_len :]
    x = torch.tensor([ids], device=model_device(model))  # (1, T)
    maps, parity = attention_maps(model, (x,))
    with torch.inference_mode():
        next_id = int(model(x)[0, -1].argmax())
    labels = [token_label(tokenizer, i) for i in ids]
    summary = [f"text: {text}", f"most likely next token: {token_label(tokenizer, next_id)!r}"]
    kinds = _kinds(maps, {"causal_self": (labels, labels)})
    return Exploration("decoder_only", str(model_dir), summary, kinds, parity)


def _explore_encoder(model_dir, home: Path, text: str, pair: str | None, device) -> Exploration:
    from aiayn.data.labelled import LABELS_FILE, load_labels
    from aiayn.models.serialization import load_pretrained
    from aiayn.tokenizers.bert import load_bert_tokenizer

    model = load_pretrained(model_dir, device)
    tokenizer = load_bert_tokenizer(home)
    encoding = tokenizer.encode(text, pair, max_len=model.config.max_len)
    dev = model_device(model)
    ids = torch.tensor([encoding.ids], device=dev)  # (1, T)
    segments = torch.tensor([encoding.segments], device=dev) if model.segments is not None else None
    maps, parity = attention_maps(model, (ids, segments))
    summary = [f"text: {text}"] + ([f"pair: {pair}"] if pair is not None else [])
    if model.classifier is not None and (home / LABELS_FILE).is_file():
        labels = load_labels(home).names
        with torch.inference_mode():
            probs = model.classify(ids, segments).float().softmax(-1)[0]  # (K,)
        summary.append(f"predicted label: {labels[int(probs.argmax())]} "
                       f"({float(probs.max()):.0%})")  # fmt: skip
    tokens = [tokenizer.id_to_token(i) or "?" for i in encoding.ids]
    kinds = _kinds(maps, {"self": (tokens, tokens)})
    return Exploration("encoder_only", str(model_dir), summary, kinds, parity)


def _explore_image(model_dir, image: str | os.PathLike, device) -> Exploration:
    from aiayn.classifier import _load_images, load_image_classifier
    from aiayn.visualize.rollout import attention_rollout

    model, normalization, labels = load_image_classifier(model_dir, device)
    cfg = model.config
    pixels = _load_images([image], normalization.image_size, cfg.channels)  # (1, C, S, S)
    x = normalization(pixels.to(model_device(model)))  # (1, C, S, S)
    maps, parity = attention_maps(model, (x,))
    with torch.inference_mode():
        probs = model(x).float().softmax(-1)[0]  # (K,)
    g = normalization.image_size // cfg.patch_size
    patches = [f"patch ({r},{c})" for r in range(g) for c in range(g)]
    tokens = ["[CLS]"] * model.prefix + patches
    summary = [f"image: {Path(image).name}",
               f"predicted label: {labels.names[int(probs.argmax())]} ({float(probs.max()):.0%})",
               f"tokens: {'[CLS] + ' if model.prefix else ''}{g}×{g} patches of "
               f"{cfg.patch_size}×{cfg.patch_size} pixels"]  # fmt: skip
    rollout = None
    if "self" in maps:
        rollout = attention_rollout(maps["self"], model.prefix)[0].cpu()  # (g, g)
    kinds = _kinds(maps, {"self": (tokens, tokens), "pooling": (patches, patches)})
    return Exploration("vision", str(model_dir), summary, kinds, parity, rollout, pixels[0].cpu())


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def token_label(tokenizer, token_id: int) -> str:
    """A token as readable text (a leading space as '▁'); special tokens by name."""
    text = tokenizer.decode([token_id], skip_special=False)
    if not text or "\ufffd" in text:
        name = getattr(tokenizer, "id_to_token", lambda _: None)(token_id)
        if name:
            return name
        return "<bos>" if token_id == getattr(tokenizer, "bos_id", None) else f"<{token_id}>"
    return "▁" + text[1:] if text.startswith(" ") else text


__all__ = [
    "TITLES",
    "AttentionKind",
    "Exploration",
    "attention_maps",
    "explore",
    "passes",
    "stack_layers",
    "token_label",
]
