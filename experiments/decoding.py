"""How is the Transformer used to generate: what do the decoding strategies do? (QUESTIONS.md 31)

    python -m experiments.decoding --out docs/why     # 6.5 minutes on 1 of 2 shared CPU cores

One encoder-decoder (2+2 layers, d_model 128) trained on the number-words task (English
number words to German: exactly one correct output per input, unseen test numbers), then
decoded on the 300 validation numbers by each strategy of `aiayn.decode`:

- greedy and beam search (k = 4, α = 0.6): deterministic, one output per source;
- ancestral sampling at temperatures 0.5, 1 and 1.5; top-k (k = 5) and top-p (p = 0.9) at
  temperature 1 (`SamplingConfig`, `Sampler`): 10 samples per source.

Quality: exact match (per sample, and "any of the 10" for sampling). Diversity: distinct
outputs among the 10 samples of a source, and distinct-2 (unique token bigrams / all bigrams
over a source's samples; Li et al. 2016). The model was trained with label smoothing 0.1 (the
paper's), which puts ≥ 0.1 of its probability on wrong tokens by design: sampling reads that
mass literally, the argmax never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aiayn.decode import generate
from aiayn.decode.greedy import never_generated
from aiayn.decode.sampling import Sampler, SamplingConfig
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.tokenizers import TokenizerPair
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import trained_baseline

SAMPLES = 10
SAMPLERS = {
    "sample T=0.5": SamplingConfig(temperature=0.5),
    "sample T=1": SamplingConfig(temperature=1.0),
    "sample T=1.5": SamplingConfig(temperature=1.5),
    "top-k 5": SamplingConfig(top_k=5),
    "top-p 0.9": SamplingConfig(top_p=0.9),
}


@torch.inference_mode()
def sample(model: EncoderDecoder, src: Tensor, sampling: SamplingConfig, bos_id: int,
           eos_id: int, generator: torch.Generator, max_steps: int) -> list[list[int]]:  # fmt: skip
    """One sampled output per row through the decoding protocol (start → step), as ids
    without </s>. Shape: src (B, S) long -> B lists of ids."""
    sampler = Sampler(sampling, banned=never_generated(model.config.pad_id, bos_id, eos_id))
    state = model.start(src)
    tokens = torch.full((src.shape[0], 1), bos_id, dtype=torch.long)  # (B, 1)
    outs: list[list[int]] = [[] for _ in range(src.shape[0])]
    done = [False] * src.shape[0]
    for _ in range(max_steps):  # finished rows run on, their tokens ignored (no compaction)
        nxt = sampler(model.step(state, tokens), generator=generator)  # (B,)
        for row, tok in enumerate(nxt.tolist()):
            if not done[row]:
                done[row] = tok == eos_id
                if not done[row]:
                    outs[row].append(tok)
        if all(done):
            break
        tokens = nxt[:, None]  # (B, 1)
    return outs


def _pad(rows: list[list[int]], pad_id: int) -> Tensor:
    width = max(map(len, rows))
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])  # (B, S)


def distinct_2(outputs: list[list[int]]) -> float:
    """Unique token bigrams over all bigrams of one source's outputs (1 = none repeated)."""
    grams = [tuple(o[i : i + 2]) for o in outputs for i in range(len(o) - 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def score(outputs: list[list[list[int]]], refs: list[list[int]]) -> dict[str, float]:
    """Exact match per output and any-of-N, distinct outputs per source, distinct-2."""
    n = len(refs)
    return {
        "exact_match": sum(o == r for os, r in zip(outputs, refs, strict=True) for o in os)
        / sum(map(len, outputs)),
        "any_correct": sum(r in os for os, r in zip(outputs, refs, strict=True)) / n,
        "distinct_outputs": sum(len({tuple(o) for o in os}) for os in outputs) / n,
        "distinct_2": sum(distinct_2(os) for os in outputs) / n,
    }


def decode_all(model: EncoderDecoder, tokenizers: TokenizerPair, src: list[str], ref: list[str],
               samples: int, seed: int) -> dict[str, dict[str, float]]:  # fmt: skip
    s_tok, t_tok = tokenizers.source, tokenizers.target
    pad, bos, eos = model.config.pad_id, t_tok.bos_id, t_tok.eos_id
    ids = [s_tok.encode(x) for x in src]
    refs = [t_tok.encode(y, add_eos=False) for y in ref]
    model.eval()
    results = {}
    for name, beam in (("greedy", 1), ("beam 4", 4)):
        outs = [generate(model, _pad(ids[i : i + 64], pad), bos, eos, beam_size=beam)
                for i in range(0, len(ids), 64)]  # fmt: skip
        results[name] = score([[o] for chunk in outs for o in chunk], refs)
    generator = torch.Generator().manual_seed(seed)
    max_steps = max(map(len, refs)) + 10
    for name, sampling in SAMPLERS.items():
        outputs: list[list[list[int]]] = []
        for i in range(0, len(ids), 32):
            chunk = [row for row in ids[i : i + 32] for _ in range(samples)]  # each source N×
            drawn = sample(model, _pad(chunk, pad), sampling, bos, eos, generator, max_steps)
            outputs += [drawn[j : j + samples] for j in range(0, len(drawn), samples)]
        results[name] = score(outputs, refs)
    return results


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    steps = 6 if smoke else 400
    model, tokenizers, curve, src, ref = trained_baseline(out / "decoding_runs", smoke, seed, steps)
    samples = 3 if smoke else SAMPLES
    figures: dict[str, Any] = {
        "steps": steps,
        "samples": samples,
        "valid": curve["valid"],
        "strategies": decode_all(model, tokenizers, src, ref, samples, seed),
    }
    figures["answer"] = " ".join(
        _line(name, r, samples, name in SAMPLERS) for name, r in figures["strategies"].items()
    )
    plot(figures, out / "decoding.png")
    return figures


def _line(name: str, r: dict[str, float], samples: int, sampled: bool) -> str:
    if not sampled:
        return f"{name}: exact match {r['exact_match']:.1%};"
    return (
        f"{name}: exact match {r['exact_match']:.1%} (any of {samples}: {r['any_correct']:.1%}), "
        f"{r['distinct_outputs']:.2f} distinct outputs, distinct-2 {r['distinct_2']:.2f};"
    )


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    s = figures["strategies"]
    names = list(s)
    ax = axes[0]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [100 * s[n]["exact_match"] for n in names], 0.4,
           label="exact match, per output")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [100 * s[n]["any_correct"] for n in names], 0.4,
           label=f"any of {figures['samples']} correct")  # fmt: skip
    ax.set_xticks(list(xs), names, rotation=30, fontsize=8)
    ax.set(ylabel="% of validation numbers", title="quality")
    ax.legend(fontsize=8)
    ax = axes[1]
    for n, marker in zip(names, "o^sDvP*", strict=False):
        ax.scatter(s[n]["distinct_outputs"], 100 * s[n]["exact_match"], marker=marker, s=60,
                   label=n, alpha=0.8)  # fmt: skip
    ax.legend(fontsize=8)
    ax.set(xlabel=f"distinct outputs among {figures['samples']} per source",
           ylabel="exact match per output (%)", title="quality vs diversity")  # fmt: skip
    save_figure(fig, path)


main = cli("decoding", __doc__, run)

if __name__ == "__main__":
    main()
