"""Generate text with a trained language model: `aiayn.generate(model_dir, prompts)`.

    aiayn.generate("runs/shakespeare", ["ROMEO:", ""], max_new_tokens=200, temperature=0.8,
                   top_k=40, seed=1)       # → two continuations (an empty prompt: from scratch)

Each output is the continuation only (the prompt is not repeated); generation of a row stops
at the end-of-text token or after `max_new_tokens`. An empty prompt starts from the start token
(the end-of-text token that precedes every training document). With `num_samples` > 1 each
prompt gets that many samples, outputs ordered prompt by prompt. Output k (counting every
sample) draws with seed `seed + k`, so it is the same whatever the batch size; temperature 0 is
greedy. Past the model's context the window slides (`aiayn.decode.generation`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import torch

from aiayn.errors import ConfigError
from aiayn.tokenizers.lm import LMTokenizer, StreamDecoder, load_lm_tokenizer
from aiayn.tokenizers.special_tokens import BOS_ID

log = logging.getLogger(__name__)

OnText = Callable[[int, str], object]  # (output index, text completed by the newest tokens)


def load_language_model(
    model_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, LMTokenizer]:
    """The decoder-only model and its tokenizer in a model directory (or a run's checkpoint
    directory, RUN/checkpoints/step_N).

    Raises:
        ConfigError: no such directory, or a model that is not a language model.
        DataError: no readable tokenizer there.
    """
    from aiayn.models.serialization import load_pretrained, require_arch

    home = require_arch(model_dir, "decoder_only")
    tokenizer = load_lm_tokenizer(home)
    return load_pretrained(model_dir, device), tokenizer


def generate(
    model: str | os.PathLike | torch.nn.Module,
    prompts: Sequence[str],
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    num_samples: int = 1,
    tokenizer: LMTokenizer | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    on_text: OnText | None = None,
) -> list[str]:
    """Continue each prompt; `num_samples` outputs per prompt, in prompt order.

    Args:
        model: a model directory, or a `DecoderOnly` plus its `tokenizer`.
        prompts: text; "" starts from the start token.
        max_new_tokens: the most tokens generated per output.
        temperature, top_k, top_p, repetition_penalty: `aiayn.decode.SamplingConfig`;
            temperature 0 = greedy.
        seed: output k draws with seed `seed + k` (None: torch's global RNG picks a base).
        num_samples: outputs per prompt.
        batch_size: outputs generated together (the results do not depend on it).
        on_text: streaming: `on_text(k, piece)` with the text each new token completes for
            output k (pieces join to the output; with batch_size 1 the outputs come one after
            another, in order).

    Raises:
        ConfigError: a bad sampling option, or a model directory that is not a language model.
    """
    from aiayn.decode.generation import generate_tokens, row_seeds
    from aiayn.decode.sampling import SamplingConfig

    sampling = SamplingConfig(temperature, top_k, top_p, repetition_penalty)
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if isinstance(model, torch.nn.Module):
        if tokenizer is None:
            raise ValueError("pass tokenizer= with a model object (a model dir holds its own)")
    else:
        model, loaded = load_language_model(model, device)
        tokenizer = tokenizer or loaded
    was_training = model.training
    model.eval()
    ids = [tokenizer.encode(p) or [tokenizer.bos_id] for p in prompts]
    rows = [ids[i] for i in range(len(ids)) for _ in range(num_samples)]  # output k's prompt
    seeds = row_seeds(seed, len(rows))
    banned = _never_generated(tokenizer)
    outputs = [""] * len(rows)
    # Batches of similar lengths (little padding), longest first, so that the first batch
    # shows at once whether memory suffices; the results do not depend on the grouping (each
    # row is independent of its batch). One at a time: in order, for streaming.
    order = list(range(len(rows)))
    if batch_size > 1:
        order.sort(key=lambda k: -len(rows[k]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        streams = {k: StreamDecoder(tokenizer) for k in chunk} if on_text else {}

        def stream(row: int, token: int, chunk=chunk, streams=streams) -> None:
            if text := streams[chunk[row]].push(token):
                on_text(chunk[row], text)

        tokens = generate_tokens(
            model, [rows[k] for k in chunk], max_new_tokens, sampling,
            eos_id=tokenizer.eot_id, seed=[seeds[k] for k in chunk],
            on_token=stream if on_text else None, banned=banned,
        )  # fmt: skip
        for k, out in zip(chunk, tokens, strict=True):
            outputs[k] = tokenizer.decode(out)
            if on_text and (rest := streams[k].finish()):
                on_text(k, rest)
    model.train(was_training)
    return outputs


def _never_generated(tokenizer: LMTokenizer) -> tuple[int, ...]:
    """Ids a language model must not write: padding, the unused <s> and <unk>.

    Neither <s> nor <unk> occurs in LM training data (documents are framed by end-of-text, and
    the tokenizer knows every character of its training text), so banning them changes nothing
    a trained model would do, except keep an untrained one from writing invisible tokens.
    """
    ids = {tokenizer.pad_id, tokenizer.unk_id}
    if tokenizer.eot_id != BOS_ID:
        ids.add(BOS_ID)
    return tuple(sorted(ids))


__all__ = ["generate", "load_language_model"]
