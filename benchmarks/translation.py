"""Translation throughput: output tokens/s of greedy and beam search, fixed output length.

Every contender translates the same batch of random sources and is forced to output exactly
`translate_out_len` tokens per sentence (</s> held back until then, the length limit at it),
so all do the same number of decoder steps whatever their random weights prefer.
  aiayn        `aiayn.decode.generate` (min_len = max_len)
  hf_marian    `MarianMTModel.generate` (min_new_tokens = max_new_tokens), random init
  ctranslate2  `ctranslate2.Translator.translate_batch` on aiayn's weights exported with
               `aiayn.export.export_ctranslate2` (min = max decoding length), fp32
"""

from __future__ import annotations

import tempfile

import torch

from aiayn.decode.search import generate
from aiayn.models.info import estimate_decode_flops
from benchmarks.contenders import BOS, EOS, PAD, Dims, aiayn_model, marian_model
from benchmarks.measure import PeakMemory, median_seconds


def translate_rate(
    contender: str,
    dims: Dims,
    beam: int,
    device: str,
    warmup: int,
    reps: int,
    variant: str = "default",
) -> dict:
    """Output tokens/s and peak memory of translating one batch.

    variant (aiayn only), to measure what each decoding optimization buys:
      "default"   as shipped
      "sdpa"      SDPA for single-query decoding steps too (before `pick_impl`)
    """
    torch.manual_seed(0)
    B, L = dims.translate_batch, dims.translate_out_len
    src = torch.randint(4, dims.vocab, (B, dims.translate_src_len))  # (B, S): no specials
    src[:, -1] = EOS  # sources end with </s> (CTranslate2 appends it itself)
    with tempfile.TemporaryDirectory() as tmp:
        impl = "sdpa" if variant == "sdpa" else "auto"
        run, check = _translator(contender, dims, src, beam, L, device, tmp, impl)
        with PeakMemory(device) as mem:
            seconds = median_seconds(run, warmup, reps, device)
        lengths = check(run())
    if set(lengths) != {L}:
        raise RuntimeError(f"{contender} output lengths {sorted(set(lengths))}, expected {L}")
    return {
        "tokens_per_s": round(B * L / seconds, 1),
        "batch_ms": round(seconds * 1e3, 2),
        "flops_per_s": decode_flops(dims, beam) / seconds,
        "peak_mem_mib": mem.mib,
    }


def decode_flops(dims: Dims, beam: int) -> int:
    """Matmul FLOPs of translating the benchmark's batch (`estimate_decode_flops` per sentence)."""
    per_sentence = estimate_decode_flops(
        dims.model_config(), dims.translate_src_len, dims.translate_out_len, beam
    )
    return dims.translate_batch * per_sentence


def _translator(contender, dims, src, beam, L, device, tmp, impl="auto"):
    """A closure that translates `src`, and one that returns the output lengths of a result."""
    if contender == "aiayn":
        model = aiayn_model(dims, impl)[0].eval().to(device)
        src = src.to(device)

        def run():
            return generate(model, src, BOS, EOS, beam_size=beam, max_len=L, min_len=L)

        return run, lambda out: [len(ids) for ids in out]

    if contender == "hf_marian":
        model = marian_model(dims)[0].eval().to(device)
        src = src.to(device)

        @torch.inference_mode()
        def run():
            return model.generate(
                input_ids=src, attention_mask=src != PAD, num_beams=beam, do_sample=False,
                max_new_tokens=L, min_new_tokens=L,
            )  # fmt: skip

        # HF's output starts with the decoder start token: L new tokens follow it.
        return run, lambda out: [row.shape[0] - 1 for row in out]

    if contender == "ctranslate2":
        import ctranslate2

        from aiayn.export import export_ctranslate2

        model = aiayn_model(dims)[0].eval()
        out_dir = export_ctranslate2(model, f"{tmp}/ct2")
        translator = ctranslate2.Translator(
            str(out_dir), device=device.split(":")[0], intra_threads=torch.get_num_threads()
        )
        vocab = _ct2_vocabulary(out_dir)
        tokens = [[vocab[i] for i in row[:-1]] for row in src.tolist()]  # without </s>

        def run():
            return translator.translate_batch(
                tokens, beam_size=beam, max_decoding_length=L, min_decoding_length=L,
                max_batch_size=len(tokens), return_scores=False,
            )  # fmt: skip

        return run, lambda out: [len(r.hypotheses[0]) for r in out]

    raise ValueError(f"unknown translation contender {contender!r}")


def _ct2_vocabulary(model_dir) -> list[str]:
    """The token strings of an exported model, by id (CTranslate2 takes tokens, not ids)."""
    import json
    from pathlib import Path

    for name in ("shared_vocabulary", "source_vocabulary"):
        path = Path(model_dir) / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        path = path.with_suffix(".txt")
        if path.exists():
            return path.read_text().splitlines()
    raise FileNotFoundError(f"no vocabulary file in {model_dir}")
