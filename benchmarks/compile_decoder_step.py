"""`torch.compile` of the decoder step against eager, on real sentences (issue 31).

    python -m benchmarks.compile_decoder_step --model runs/multi30k --sentences 256

Swaps `torch.compile(model.step, dynamic=True)` into `aiayn.translator.translate_sentences`
and times, per beam size: two eager rounds, the first compiled call (compilation included),
then two compiled rounds, with the share of outputs identical to eager's. Batch size and
cache length change every step (rows leave, the cache doubles), so dynamo recompiles; once it
reaches its recompile limit it runs the step eagerly, which the timings then show.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.real_sentences import DATA, read_pairs


def measure(model_dir: str, sentences: list[str], beams: list[int], alpha: float = 0.6) -> dict:
    from aiayn.translator import load_translator, translate_sentences

    model, tokenizers = load_translator(model_dir)
    report = {}
    for beam in beams:

        def run() -> list[str]:
            return translate_sentences(model, tokenizers, sentences, beam, alpha, 64)  # noqa: B023

        eager_out = run()
        eager = []
        for _ in range(2):
            start = time.perf_counter()
            run()
            eager.append(round(time.perf_counter() - start, 3))
        model.step = torch.compile(model.step, dynamic=True)  # an instance attribute: undone below
        try:
            start = time.perf_counter()
            out = run()
            first = round(time.perf_counter() - start, 3)
            compiled = []
            for _ in range(2):
                start = time.perf_counter()
                run()
                compiled.append(round(time.perf_counter() - start, 3))
        finally:
            del model.step
        same = sum(a == b for a, b in zip(out, eager_out, strict=True)) / len(out)
        report[f"beam{beam}"] = dict(eager_s=eager, compiled_first_s=first, compiled_s=compiled,
                                     same=same)  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_decoder_step",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", required=True, help="a Multi30k model directory")
    p.add_argument("--sentences", type=int, default=256, help="test sentences (default: 256)")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    src, _ = read_pairs(DATA, n=args.sentences)
    report = {"model": args.model, "sentences": len(src), "threads": args.threads,
              **measure(args.model, src, args.beams)}  # fmt: skip
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
