"""Real sentences end to end: aiayn's translator against CTranslate2 on the same trained weights.

    python -m benchmarks.real_sentences --model runs/multi30k            # greedy, beam 4, beam 5
    python -m benchmarks.real_sentences --model runs/multi30k --beams 1 4 --rounds 5
    python -m benchmarks.real_sentences --train-minutes 10               # no model: train one
    python -m benchmarks.real_sentences --model DIR --profile            # where aiayn's time goes

The fixed-length harness (`benchmarks.translation`) forces every contender to output the same
number of tokens from random sources. Real use differs: sentences of mixed lengths that finish at
different steps, text in and text out. Here every contender translates the same test set (Multi30k
test_2016_flickr, 1,000 sentences, from `--data`) from text to text, batches of `--batch-size`:
  aiayn             `aiayn.translator.translate_sentences`: tokenize → length-sorted batches →
                    decode → detokenize (what `aiayn translate` runs)
  aiayn_int8        the same with `quantize="int8"` (dynamic int8 linear layers)
  aiayn_k_finished, aiayn_int8_k_finished
                    the same with `stopping="k_finished"`: beam search ends a sentence once K
                    hypotheses have finished, CTranslate2's rule (aiayn's default is the exact
                    bound, which runs more steps; `aiayn.decode.beam`)
  ctranslate2       `Translator.translate_batch` on the model exported with `aiayn export`
                    (fp32), tokenized and detokenized with the model's own tokenizer; CT2 sorts
                    by length itself (`max_batch_size`)
  ctranslate2_int8  the same export with `quantization="int8"`
  hf_marian         HF transformers' `MarianMTModel.generate` on the same weights
                    (`benchmarks.contenders.marian_from_aiayn`), the same token ids in
                    length-sorted batches; `bad_words_ids` bans <pad>/<s>, `early_stopping=True`
                    (K finished) and HF's own length penalty log P / |Y|^α
Each contender decodes with the same beam size and length limit (`max_len` for every sentence:
CTranslate2 takes one limit per call, so aiayn's `extra_len` is set to `max_len` too; a trained
model's outputs end long before it); aiayn's GNMT penalty α has
no CTranslate2 equal (see `aiayn.export.ctranslate2.decoding_options`), so beam outputs may
differ a little: the report gives the share of sentences identical to aiayn fp32's outputs and
each contender's BLEU.

All contenders live in ONE process and take turns, round after round (A B C D, A B C D, …), so
the machine's drifting load hits each alike; the median round per contender is reported with
sentences/s, output tokens/s (the target tokenizer's tokens of the output text) and the ratios
to CTranslate2 of the same precision. Threads: `--threads` for torch and CTranslate2 alike.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

DATA = Path("/work/shared/data/multi30k")
SPLIT = "test_2016_flickr"


def read_pairs(data: Path, split: str = SPLIT, n: int | None = None) -> tuple[list, list]:
    """Source (English) and reference (German) lines of a Multi30k split."""

    def lines(path: Path) -> list[str]:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]

    src, ref = lines(data / f"{split}.en.gz"), lines(data / f"{split}.de.gz")
    return src[:n], ref[:n]


Translate = Callable[[list[str]], list[str]]


def aiayn_contender(model_dir: str, beam: int, alpha: float, batch_size: int, **opts) -> Translate:
    """`aiayn translate` as a function: the model loaded once, text in, text out."""
    from aiayn.translator import load_translator, translate_sentences

    model, tokenizers = load_translator(model_dir)
    quantize = opts.pop("quantize", None)
    if quantize:
        from aiayn.export.quantize import quantize_model

        model = quantize_model(model, quantize)
    opts.setdefault("extra_len", model.config.max_len)  # CT2's one limit: max_len (see module)

    def run(sentences: list[str]) -> list[str]:
        return translate_sentences(model, tokenizers, sentences, beam, alpha, batch_size, **opts)

    return run


def revision_contender(
    rev: str, model_dir: str, beam: int, alpha: float, batch_size: int, **opts
) -> Translate:
    """aiayn's translator and decoding loops as they were at git revision `rev` (the rest of
    the package as it is now): the "before" of a before/after pair in one process."""
    old = load_revision(rev)
    from aiayn.translator import load_translator

    model, tokenizers = load_translator(model_dir)
    quantize = opts.pop("quantize", None)
    if quantize:
        from aiayn.export.quantize import quantize_model

        model = quantize_model(model, quantize)
    opts.setdefault("extra_len", model.config.max_len)  # CT2's one limit: max_len (see module)
    import aiayn.decode

    def run(sentences: list[str]) -> list[str]:
        current = aiayn.decode.generate
        aiayn.decode.generate = old["search"].generate  # what translate_sentences imports
        try:
            return old["translator"].translate_sentences(
                model, tokenizers, sentences, beam, alpha, batch_size, **opts
            )
        finally:
            aiayn.decode.generate = current

    return run


#: The modules a revision contender takes from its revision, in import order.
REVISION_MODULES = ["limits", "length_penalty", "beam", "greedy", "search", "translator"]


def load_revision(rev: str) -> dict:
    """`aiayn.decode.{limits, …, search}` and `aiayn.translator` executed from the sources of
    git revision `rev`, each importing the others of that revision (not today's)."""
    import subprocess
    import types

    root = Path(__file__).resolve().parent.parent
    modules: dict = {}
    saved = dict(sys.modules)
    try:
        for name in REVISION_MODULES:
            dotted = "aiayn.translator" if name == "translator" else f"aiayn.decode.{name}"
            path = dotted.replace(".", "/") + ".py"
            source = subprocess.run(
                ["git", "show", f"{rev}:src/{path}"], cwd=root, check=True, capture_output=True,
                text=True,
            ).stdout  # fmt: skip
            module = types.ModuleType(dotted)
            module.__file__ = f"{rev}:{path}"
            sys.modules[dotted] = module  # what the next module's imports find
            exec(compile(source, module.__file__, "exec"), module.__dict__)
            modules[name] = module
    finally:
        for dotted in [k for k in sys.modules if k not in saved or sys.modules[k] is not saved[k]]:
            if dotted in saved:
                sys.modules[dotted] = saved[dotted]
            else:
                del sys.modules[dotted]
    return modules


def ctranslate2_contender(
    model_dir: str, ct2_dir: Path, beam: int, alpha: float, batch_size: int, threads: int
) -> Translate:
    """CTranslate2 on the exported weights, tokenized/detokenized by the model's tokenizer."""
    import ctranslate2

    from aiayn.export.ctranslate2 import decoding_options
    from aiayn.translator import load_translator

    model, tokenizers = load_translator(model_dir)
    limit = model.config.max_len
    del model
    src_tok, tgt_tok = tokenizers.source, tokenizers.target
    translator = ctranslate2.Translator(
        str(ct2_dir), device="cpu", intra_threads=threads, inter_threads=1
    )
    # aiayn's per-sentence limit is min(source + </s> + 50, max_len); CT2 takes one per call,
    # and on real sentences no output comes near it, so the cap is max_len.
    options = decoding_options(limit, beam_size=beam, length_penalty=0.0 if beam == 1 else alpha)
    backend = src_tok.backend
    vocab = [src_tok.id_to_token(i) for i in range(src_tok.vocab_size)]  # id -> token string

    def run(sentences: list[str]) -> list[str]:
        # The same fast Rust batch encoder as aiayn's translator (it gives ids, not strings).
        encodings = backend.encode_batch_fast(sentences, add_special_tokens=False)
        tokens = [[vocab[i] for i in e.ids[: limit - 1]] for e in encodings]  # CT2 adds </s>
        results = translator.translate_batch(
            tokens, max_batch_size=batch_size, batch_type="examples", **options
        )
        ids = [[tgt_tok.token_to_id(t) for t in r.hypotheses[0]] for r in results]
        return tgt_tok.decode_batch(ids)

    return run


def hf_marian_contender(model_dir: str, beam: int, alpha: float, batch_size: int) -> Translate:
    """HF `generate` on a MarianMTModel holding the model's weights, fed the token ids
    aiayn's translator would feed (source + </s>, cut at max_len), batches sorted by length."""
    from aiayn.translator import _pad, load_translator
    from benchmarks.contenders import marian_from_aiayn

    model, tokenizers = load_translator(model_dir)
    cfg = model.config
    hf = marian_from_aiayn(model)
    del model
    src_tok, tgt_tok = tokenizers.source, tokenizers.target
    limit, pad, bos, eos = cfg.max_len, cfg.pad_id, tgt_tok.bos_id, tgt_tok.eos_id
    options = dict(
        num_beams=beam, do_sample=False, max_new_tokens=limit, min_new_tokens=0,
        bad_words_ids=[[pad], [bos]], num_return_sequences=1, use_cache=True,
    )  # fmt: skip
    if beam > 1:  # beam-search options only: greedy warns about them
        options.update(early_stopping=True, length_penalty=alpha)

    @torch.inference_mode()
    def run(sentences: list[str]) -> list[str]:
        encoded = src_tok.encode_batch(sentences, add_eos=True)
        encoded = [row if len(row) <= limit else [*row[: limit - 1], eos] for row in encoded]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        outputs: list[list[int]] = [[] for _ in encoded]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            src = _pad([encoded[i] for i in chunk], pad, torch.device("cpu"))  # (B, S)
            out = hf.generate(input_ids=src, attention_mask=src != pad, **options)  # (B, 1 + T)
            for i, ids in zip(chunk, out[:, 1:].tolist(), strict=True):
                outputs[i] = ids[: ids.index(eos)] if eos in ids else ids
        return tgt_tok.decode_batch(outputs)

    return run


def measure(
    model_dir: str,
    sentences: list[str],
    references: list[str],
    beams: list[int],
    contenders: list[str],
    rounds: int = 3,
    alpha: float = 0.6,
    batch_size: int = 64,
    threads: int = 2,
    aiayn_opts: dict | None = None,
) -> dict:
    """Every contender × beam, interleaved round by round; the median round of each."""
    from aiayn.evaluate import corpus_scores

    torch.set_num_threads(threads)
    from aiayn.translator import load_translator

    tgt_tok = load_translator(model_dir)[1].target
    report: dict = {"sentences": len(sentences), "batch_size": batch_size, "threads": threads,
                    "alpha": alpha, "rounds": rounds, "by_beam": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        exports = _exports(model_dir, contenders, Path(tmp))
        for beam in beams:
            runs: dict[str, Translate] = {}
            for name in contenders:
                if name.startswith("ctranslate2"):
                    runs[name] = ctranslate2_contender(
                        model_dir, exports[name], beam, alpha, batch_size, threads
                    )
                elif "@" in name:  # aiayn@REV: the decoding code of a git revision
                    runs[name] = revision_contender(
                        name.split("@", 1)[1], model_dir, beam, alpha, batch_size
                    )
                elif name == "hf_marian":
                    runs[name] = hf_marian_contender(model_dir, beam, alpha, batch_size)
                else:
                    opts = dict(aiayn_opts or {}).get(name, {})
                    if name.startswith("aiayn_int8"):
                        opts = {"quantize": "int8", **opts}
                    if name.endswith("_k_finished"):
                        opts = {"stopping": "k_finished", **opts}
                    runs[name] = aiayn_contender(model_dir, beam, alpha, batch_size, **opts)
            times: dict[str, list[float]] = {name: [] for name in runs}
            outputs: dict[str, list[str]] = {}
            for name, run in runs.items():  # warm-up, and the outputs compared below
                outputs[name] = run(sentences)
            for _ in range(rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run(sentences)
                    times[name].append(time.perf_counter() - start)
            reference = outputs[contenders[0]]
            rows = {}
            for name in runs:
                seconds = statistics.median(times[name])
                n_tokens = sum(len(ids) for ids in tgt_tok.encode_batch(outputs[name]))
                rows[name] = {
                    "sentences_per_s": round(len(sentences) / seconds, 1),
                    "output_tokens_per_s": round(n_tokens / seconds, 1),
                    "seconds": [round(t, 3) for t in times[name]],
                    f"same_as_{contenders[0]}": round(
                        sum(a == b for a, b in zip(outputs[name], reference, strict=True))
                        / len(reference),
                        4,
                    ),
                    "bleu": round(corpus_scores(outputs[name], references)["bleu"], 2),
                }
            report["by_beam"][f"beam{beam}"] = {"contenders": rows, "ratios": _ratios(rows)}
    return report


def measure_isolated(model_dir: str, args: argparse.Namespace) -> dict:
    """Every contender in a fresh process of its own (one warm-up and one timed round each),
    taking turns round by round; the median round of each, and the same ratios as `measure`."""
    import subprocess

    rates: dict[str, dict[str, list[float]]] = {f"beam{b}": {} for b in args.beams}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name in args.contenders:
                out = Path(tmp) / "one.json"
                cmd = [
                    sys.executable, "-m", "benchmarks.real_sentences", "--model", model_dir,
                    "--data", str(args.data), "--split", args.split, "--alpha", str(args.alpha),
                    "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                    "--rounds", "1", "--contenders", name, "--out", str(out),
                    "--beams", *map(str, args.beams),
                ]  # fmt: skip
                if args.sentences:
                    cmd += ["--sentences", str(args.sentences)]
                subprocess.run(
                    cmd, check=True, capture_output=True, cwd=Path(__file__).parent.parent
                )
                one = json.loads(out.read_text())["by_beam"]
                for beam, result in one.items():
                    row = result["contenders"][name]
                    rates[beam].setdefault(name, []).append(row["sentences_per_s"])
    report: dict = {"isolated": True, "rounds": args.rounds, "threads": args.threads,
                    "batch_size": args.batch_size, "alpha": args.alpha, "by_beam": {}}  # fmt: skip
    for beam, by_name in rates.items():
        rows = {n: {"sentences_per_s": round(statistics.median(r), 1), "rounds": r}
                for n, r in by_name.items()}  # fmt: skip
        report["by_beam"][beam] = {"contenders": rows, "ratios": _ratios(rows)}
    return report


def _exports(model_dir: str, contenders: list[str], tmp: Path) -> dict[str, Path]:
    from aiayn.export import export_ctranslate2

    out = {}
    for name in contenders:
        if name.startswith("ctranslate2"):
            quantization = "int8" if name.endswith("int8") else None
            out[name] = export_ctranslate2(model_dir, tmp / name, quantization=quantization)
    return out


def _ratios(rows: dict) -> dict:
    pairs = [("aiayn", "ctranslate2"), ("aiayn_int8", "ctranslate2_int8"),
             ("aiayn_int8", "aiayn"), ("aiayn_k_finished", "ctranslate2"),
             ("aiayn_int8_k_finished", "ctranslate2_int8"), ("aiayn_k_finished", "aiayn"),
             ("aiayn", "hf_marian")]  # fmt: skip
    pairs += [("aiayn", name) for name in rows if "@" in name]  # after ÷ before
    ratios = {}
    for ours, peer in pairs:
        if ours in rows and peer in rows:
            a, b = rows[ours]["sentences_per_s"], rows[peer]["sentences_per_s"]
            ratios[f"{ours}_vs_{peer}"] = round(a / b, 3)
    return ratios


# --- the profile --------------------------------------------------------------------------------


def profile_aiayn(
    model_dir: str, sentences: list[str], beam: int, alpha: float = 0.6, batch_size: int = 64,
    threads: int = 2, top: int = 15, quantize: str | None = None, stopping: str = "exact",
) -> dict:  # fmt: skip
    """Where one `translate_sentences` call spends its time: its phases (wall clock, through
    wrappers around the tokenizers, `start`, `step`, `reorder` and the beam bookkeeping; the
    calls of `model.step` are the decoder steps) and torch's operators (torch.profiler, self
    CPU time)."""
    from aiayn.decode import beam as beam_mod
    from aiayn.models import encoder_decoder as ed
    from aiayn.translator import load_translator, translate_sentences

    torch.set_num_threads(threads)
    model, tokenizers = load_translator(model_dir)
    if quantize:
        from aiayn.export.quantize import quantize_model

        model = quantize_model(model, quantize)

    def translate_all(batch: list[str]) -> list[str]:
        return translate_sentences(
            model, tokenizers, batch, beam, alpha, batch_size, stopping=stopping
        )

    translate_all(sentences[:128])  # warm-up
    phases: dict[str, float] = {}
    counts: dict[str, int] = {}

    def timed(owner, attr: str, phase: str):
        original = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start
                counts[phase] = counts.get(phase, 0) + 1

        setattr(owner, attr, wrapper)
        return original

    targets = [
        (type(tokenizers.source), "encode", "tokenize"),
        (type(tokenizers.source), "encode_batch", "tokenize"),
        (type(tokenizers.target), "decode", "detokenize"),
        (type(tokenizers.target), "decode_batch", "detokenize"),
        (type(model), "start", "encoder (start)"),
        (type(model), "step", "decoder step (model.step)"),
        (ed.EncoderDecoderState, "reorder", "state.reorder (cache)"),
        (beam_mod.BeamSearch, "step", "beam bookkeeping (BeamSearch.step)"),
    ]
    originals = []
    seen = set()
    for owner, attr, phase in targets:
        if (owner, attr) in seen or not hasattr(owner, attr):
            continue
        seen.add((owner, attr))
        originals.append((owner, attr, timed(owner, attr, phase)))
    try:
        start = time.perf_counter()
        translate_all(sentences)
        total = time.perf_counter() - start
    finally:
        for owner, attr, original in reversed(originals):
            setattr(owner, attr, original)
    phases["other (batching, log_softmax, loop)"] = total - sum(phases.values())
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        translate_all(sentences)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    op_total = sum(e.self_cpu_time_total for e in ops)
    return {
        "beam": beam,
        "quantize": quantize,
        "stopping": stopping,
        "seconds": round(total, 3),
        "phases": {
            k: {"seconds": round(v, 3), "share": round(v / total, 3), "calls": counts.get(k)}
            for k, v in sorted(phases.items(), key=lambda kv: -kv[1])
        },
        "top_ops_self_cpu": [
            {"op": e.key, "share": round(e.self_cpu_time_total / op_total, 3), "calls": e.count}
            for e in ops[:top]
        ],
    }


# --- a model when none is given -----------------------------------------------------------------


def train_short(data: Path, out: Path, minutes: float) -> Path:
    """Train the Multi30k recipe for `minutes` (cosine decay over them) into `out`."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    cmd = [
        sys.executable, "-m", "aiayn", "train",
        "--config", str(root / "recipes/multi30k_en_de.json"),
        "--train-src", str(data / "train.en.gz"), "--train-tgt", str(data / "train.de.gz"),
        "--valid-src", str(data / "val.en.gz"), "--valid-tgt", str(data / "val.de.gz"),
        "--out", str(out), "--no-progress", "--max-minutes", str(minutes),
        "--decay-minutes", str(minutes), "--valid-every-minutes", str(max(minutes / 2, 1)),
        "--keep-last", "2", "--average-last", "2",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_sentences", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", help="a Multi30k model directory (default: train one, see "
                   "--train-minutes)")  # fmt: skip
    p.add_argument("--train-minutes", type=float, default=10.0,
                   help="without --model: train the Multi30k recipe this long first")  # fmt: skip
    p.add_argument("--train-out", type=Path, default=Path("runs/bench_multi30k"),
                   help="where that model goes (reused when it exists)")  # fmt: skip
    p.add_argument("--data", type=Path, default=DATA, help="Multi30k directory (*.en.gz, *.de.gz)")
    p.add_argument("--split", default=SPLIT, help=f"test split (default: {SPLIT})")
    p.add_argument("--sentences", type=int, default=None, help="only the first N sentences")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 4, 5])
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (the median is kept)")
    p.add_argument("--contenders", nargs="+",
                   default=["aiayn", "ctranslate2", "aiayn_int8", "ctranslate2_int8"],
                   help="aiayn, aiayn_int8, aiayn_k_finished, aiayn_int8_k_finished, "
                   "ctranslate2, ctranslate2_int8, hf_marian (see above), and aiayn@REV: the "
                   "decoding loops and translator of git revision REV (a before/after pair "
                   "in one process); the first is the reference of the agreement "
                   "column")  # fmt: skip
    p.add_argument("--isolate", action="store_true",
                   help="each contender in a process of its own, taking turns round by round "
                   "(no thread pools shared with another library: CTranslate2's OpenMP "
                   "threads slow torch's in one process); speeds only")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="also profile aiayn at each beam")
    p.add_argument("--out", type=Path, help="also write the JSON report here")
    args = p.parse_args(argv)
    if not (args.data / f"{args.split}.en.gz").exists():
        raise SystemExit(f"--data {args.data}: no {args.split}.en.gz there (Multi30k)")
    model = args.model
    if model is None:
        model = str(args.train_out)
        if not (args.train_out / "config.json").exists():
            train_short(args.data, args.train_out, args.train_minutes)
    src, ref = read_pairs(args.data, args.split, args.sentences)
    report = {"model": model, "split": args.split, "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.isolate:
        report.update(measure_isolated(model, args))
    else:
        report.update(measure(model, src, ref, args.beams, args.contenders, args.rounds,
                              args.alpha, args.batch_size, args.threads))  # fmt: skip
    if args.profile:
        from aiayn.decode.beam import STOPPING

        report["profile"] = [
            profile_aiayn(model, src, beam, args.alpha, args.batch_size, args.threads,
                          stopping=stopping)
            for beam in args.beams
            for stopping in (STOPPING if beam > 1 else ["exact"])
        ]  # fmt: skip
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
