"""Translate text with a trained model: `aiayn.translate(model_dir, sentences, beam=4)`.

Exactly one output per input, in order; an empty input gives an empty output; an input longer
than the model accepts is cut to fit, with a warning, never a crash. Several model directories
(trained with one tokenizer) translate as an ensemble: `translate([dir_a, dir_b], sentences)`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import torch

from aiayn.decode.beam import STOPPING
from aiayn.errors import ConfigError
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.ensemble import Ensemble
from aiayn.models.serialization import load_pretrained, require_arch, run_dir_of_checkpoint
from aiayn.tokenizers import TokenizerPair

log = logging.getLogger(__name__)

ModelDirs = str | os.PathLike | Sequence[str | os.PathLike]  # one model directory, or several


def load_translator(
    model_dir: ModelDirs, device: str | torch.device = "cpu"
) -> tuple[EncoderDecoder | Ensemble, TokenizerPair]:
    """The model and tokenizers saved in a model directory (or a checkpoint directory of a
    run, RUN/checkpoints/step_N, which uses the run's config and tokenizer).

    Several directories load as one `Ensemble` (the mean of their next-token probabilities);
    their models must have been trained with the same tokenizer. A list of one is that one.
    """
    if isinstance(model_dir, (str, os.PathLike)):
        require_arch(model_dir, "encoder_decoder")
        return load_pretrained(model_dir, device), _load_tokenizers(model_dir)
    dirs = list(model_dir)
    if not dirs:
        raise ConfigError("no model directory given")
    if len(dirs) == 1:
        return load_translator(dirs[0], device)
    for directory in dirs:
        require_arch(directory, "encoder_decoder")
    tokenizers = _load_tokenizers(dirs[0])
    for other in dirs[1:]:  # before loading any weights: the cheap check first
        if not _same_tokenizers(tokenizers, _load_tokenizers(other)):
            raise ConfigError(
                f"{other}: its tokenizer differs from that of {dirs[0]}; an ensemble's models "
                "must be trained with one tokenizer (the same tokenizer.json)"
            )
    return Ensemble([load_pretrained(d, device) for d in dirs]), tokenizers


def translate(
    model: ModelDirs | EncoderDecoder | Ensemble,
    sentences: Sequence[str],
    beam: int = 4,
    alpha: float = 0.6,
    tokenizers: TokenizerPair | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    quantize: str | None = None,
    stopping: str = "exact",
) -> list[str]:
    """Translate `sentences` with a model directory, several (an ensemble; see
    `load_translator`), or a model object plus its `tokenizers`.

    `quantize="int8"`: decode with a dynamic-int8 copy of the model (CPU only; see
    `aiayn.export.quantize`), faster and a little less exact. `stopping="k_finished"`: beam
    search stops once `beam` hypotheses have finished (CTranslate2's and fairseq's rule; see
    `aiayn.decode.beam`), faster than the exact default and rarely different."""
    from aiayn.export.quantize import check_quantize, quantize_model

    if isinstance(model, (EncoderDecoder, Ensemble)):
        if tokenizers is None:
            raise ValueError("pass tokenizers= with a model object (a model dir holds its own)")
    else:
        check_quantize(quantize, device)  # before loading: a bad flag fails fast
        model, tokenizers = load_translator(model, device)
    if quantize is not None:
        model = quantize_model(model, quantize)
    return translate_sentences(
        model, tokenizers, sentences, beam, alpha, batch_size, stopping=stopping
    )


@torch.inference_mode()
def translate_sentences(
    model: EncoderDecoder | Ensemble,
    tokenizers: TokenizerPair,
    sentences: Sequence[str],
    beam: int = 4,
    alpha: float = 0.6,
    batch_size: int = 64,
    extra_len: int = 50,
    stopping: str = "exact",
) -> list[str]:
    """Batched translation, sorted by length for little padding, returned in input order."""
    from aiayn.decode import generate

    if not 0.0 <= alpha < math.inf:  # NaN ranks every hypothesis equal; < 0 favours the shortest
        raise ConfigError(f"length penalty alpha = {alpha}: must be a number >= 0 (0.6: the paper)")
    if beam < 1 or batch_size < 1:
        raise ConfigError(f"beam = {beam}, batch_size = {batch_size}: both must be at least 1")
    if stopping not in STOPPING:
        raise ConfigError(f"stopping = {stopping!r}: must be one of {', '.join(STOPPING)}")

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    cfg = model.config
    src_tok, tgt_tok = tokenizers.source, tokenizers.target
    # The model never trained on longer sequences (training filters at max_len), and learned
    # positions stop there: cut longer inputs, and stop outputs there too.
    limit = cfg.max_len
    lines = [i for i, sentence in enumerate(sentences) if sentence.strip()]
    # One call into the tokenizer's Rust batch encoder, not one per line.
    encoded = src_tok.encode_batch([sentences[i] for i in lines], add_eos=True)
    ids: dict[int, list[int]] = {}
    for i, row in zip(lines, encoded, strict=True):
        if len(row) > limit:
            log.warning(
                "input %d has %d tokens; the model takes at most %d, so it was cut",
                i + 1, len(row), limit,
            )  # fmt: skip
            row = [*row[: limit - 1], src_tok.eos_id]
        ids[i] = row

    outputs = [""] * len(sentences)
    # Batches of similar lengths: little padding in the encoder, and sentences that tend to
    # finish at similar steps in the decoder (finished ones leave the batch anyway).
    order = sorted(ids, key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        src = _pad([ids[i] for i in chunk], cfg.pad_id, device)  # (B, S)
        hyps = generate(
            model,
            src,
            bos_id=tgt_tok.bos_id,
            eos_id=tgt_tok.eos_id,
            beam_size=beam,
            alpha=alpha,
            max_len=limit,  # a cap: each sentence may also output its own length + extra_len
            extra_len=extra_len,
            stopping=stopping,
        )
        for i, text in zip(chunk, tgt_tok.decode_batch(hyps), strict=True):
            outputs[i] = text
    model.train(was_training)
    return outputs


def _load_tokenizers(model_dir: str | os.PathLike) -> TokenizerPair:
    return TokenizerPair.load(run_dir_of_checkpoint(model_dir) or model_dir)


def _same_tokenizers(a: TokenizerPair, b: TokenizerPair) -> bool:
    """Same vocabularies and pipelines on both sides (the serialized forms are equal)."""
    sides = ((a.source, b.source), (a.target, b.target))
    return all(x.backend.to_str() == y.backend.to_str() for x, y in sides)


def _pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor(seq)
    return out.to(device)  # (B, S)
