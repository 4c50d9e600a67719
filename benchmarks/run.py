"""The benchmark harness: aiayn against its peers in one run, as ratios.

    python -m benchmarks.run                          # Multi30k-sized model, train + translate
    python -m benchmarks.run --size multi30k base     # and the paper's base model
    python -m benchmarks.run --parts attention        # one attention layer, 256 … 8192 tokens
    python -m benchmarks.run --parts optimizations    # aiayn's own switches, before/after
    python -m benchmarks.run --parts lm --lm-size shakespeare gpt2   # GPT vs HF GPT-2
    python -m benchmarks.run --parts bert --bert-size mini base      # BERT vs HF BERT
    python -m benchmarks.run --parts vit --vit-size tiny base        # ViT vs timm ViT
    python -m benchmarks.run --smoke                  # seconds: tiny sizes (CI runs this)

Every measurement runs in its own fresh process, back to back on the same machine, with the
same model dimensions, batch and precision for every contender (see benchmarks/contenders.py).
Prints ONE JSON object and appends a row per size to the results table at the end of
docs/benchmarks.md (`--record PATH` elsewhere, `--no-record` not at all). Absolute speeds
drift with the machine's load; the ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from aiayn.io import atomic_write_text
from benchmarks.bert import BERT_SIZES
from benchmarks.contenders import SIZES, Dims
from benchmarks.lm import LM_SIZES
from benchmarks.measure import ROOT, in_worker
from benchmarks.vit import VIT_SIZES

TRAINING = ["aiayn", "aiayn_sdpa", "hf_marian", "torch_transformer"]
LM = ["aiayn", "hf_gpt2"]
BERT = ["aiayn", "hf_bert"]
VIT = ["aiayn", "timm"]
LM_GENERATION = {"greedy_b1": (1, False), "greedy_b16": (16, False),
                 "sample_b1": (1, True), "sample_b16": (16, True)}  # fmt: skip
TRANSLATION = ["aiayn", "hf_marian", "ctranslate2"]
BEAMS = {"greedy": 1, "beam4": 4}
DECODING_VARIANTS = ["default", "sdpa"]  # see translation.translate_rate
TABLE_HEADER = (
    "| date | size | device | train fp32 ×Marian | train bf16 ×Marian | train fp32 ×torch "
    "| train bf16 ×torch | greedy ×HF | beam 4 ×HF | beam 4 ×CT2 | MFU fp32 | MFU bf16 |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark aiayn against HF transformers (Marian), torch.nn.Transformer and "
        "CTranslate2 in one run; print one JSON object and record a row in docs/benchmarks.md.",
    )
    p.add_argument(
        "--size", nargs="+", choices=sorted(SIZES), default=["multi30k"],
        help="model sizes: multi30k (3+3, d 256, 8k vocab), base (the paper's), tiny (smoke)",
    )  # fmt: skip
    p.add_argument(
        "--parts", nargs="+",
        choices=["train", "translate", "attention", "optimizations", "lm", "bert", "vit", "real"],
        default=["train", "translate"],
        help="what to measure: training step, translation, one attention layer vs length, "
        "aiayn's own optimizations before/after, the decoder-only LM against HF GPT-2, BERT "
        "against HF BERT, ViT against timm's ViT "
        "(default: train translate)",
    )  # fmt: skip
    p.add_argument(
        "--lm-size", nargs="+", choices=sorted(LM_SIZES), default=["shakespeare"],
        help="sizes of the lm part: shakespeare (nanoGPT's 10.7M baby GPT), gpt2 (GPT-2 "
        "small, 124M), tiny (smoke)",
    )  # fmt: skip
    p.add_argument(
        "--bert-size", nargs="+", choices=sorted(BERT_SIZES), default=["mini"],
        help="sizes of the bert part: mini (bert-mini, 128 tokens), base (bert-base), tiny "
        "(smoke)",
    )  # fmt: skip
    p.add_argument(
        "--vit-size", nargs="+", choices=sorted(VIT_SIZES), default=["tiny"],
        help="sizes of the vit part: tiny (ViT-Ti/16), base (ViT-B/16), both at 224×224, "
        "batch 32; smoke (seconds)",
    )  # fmt: skip
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=None,
                   help="training precisions (bf16 = autocast, fp32 weights; default: both, "
                   "fp32 alone on a CPU that emulates bf16, where each bf16 row takes "
                   "minutes)")  # fmt: skip
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when available)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    p.add_argument("--reps", type=int, default=5, help="timed calls; the median is reported")
    p.add_argument("--seq-lens", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192],
                   help="sequence lengths of the attention part")  # fmt: skip
    p.add_argument("--window", type=int, default=128,
                   help="sliding-window size (keys either side) of the attention part")  # fmt: skip
    p.add_argument("--compile", action="store_true",
                   help="optimizations part: also time torch.compile (slow)")  # fmt: skip
    p.add_argument("--record", type=Path, default=None,
                   help="markdown file whose final table gets one row per size "
                   "(default: docs/benchmarks.md)")  # fmt: skip
    p.add_argument("--no-record", action="store_true", help="print the JSON only")
    p.add_argument("--real-args", default="",
                   help="real part (aiayn translate vs CTranslate2 on Multi30k test sentences, "
                   "benchmarks/real_sentences.py): its flags, e.g. "
                   "'--model runs/multi30k'")  # fmt: skip
    p.add_argument("--smoke", action="store_true",
                   help="seconds-long check that every part still runs: tiny sizes, one rep, "
                   "short sequences; records nothing unless --record is given")  # fmt: skip
    args = p.parse_args(argv)
    args.peak_n = 2048  # the MFU denominator: the best FLOP/s of an n×n×n matmul
    if args.smoke:
        args.size, args.warmup, args.reps = ["tiny"], 1, 1
        args.lm_size = ["tiny"]
        args.bert_size = ["tiny"]
        args.vit_size = ["smoke"]
        args.seq_lens, args.window = [64, 128], 16
        # 2048³ bf16 matmuls take ~30 s each where bf16 is emulated (AVX2-only CPUs)
        args.peak_n = 256
        args.no_record = args.no_record or args.record is None
    if args.precision is None:
        args.precision = _default_precisions(args)
    if args.record is None:
        args.record = ROOT / "docs" / "benchmarks.md"
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    common = {"device": args.device, "threads": torch.get_num_threads()}
    jobs = _jobs(args)
    results: dict = {}
    for key, task, spec in tqdm(jobs, desc="benchmarks", unit="run"):
        results[key] = in_worker(task, **common, **spec)
    report = _report(args, results)
    if "real" in args.parts:  # one process of its own: contenders interleave round by round
        report["real_sentences"] = _real_sentences(args)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    failed = [r["error"] for r in results.values() if "error" in r]
    if failed:  # the other figures stand, but nothing is recorded from an incomplete run
        raise SystemExit("benchmark runs failed:\n  " + "\n  ".join(failed))
    if not args.no_record:
        record_rows(args.record, report)
    return report


def _real_sentences(args: argparse.Namespace) -> dict:
    """`python -m benchmarks.real_sentences` with --real-args, its JSON report."""
    import shlex
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "real.json"
        flags = shlex.split(args.real_args) + (["--sentences", "16", "--beams", "1", "2",
                                                "--rounds", "1"] if args.smoke else [])  # fmt: skip
        cmd = [sys.executable, "-m", "benchmarks.real_sentences", *flags, "--out", str(out)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:] or done.returncode}
        return json.loads(out.read_text())


def _default_precisions(args: argparse.Namespace) -> list[str]:
    """fp32 and bf16, but fp32 alone on a CPU that emulates bf16 (31× slower training steps on
    an AVX2-only EPYC: docs/benchmarks.md), unless a smoke run's tiny rows are all it asks."""
    if args.device != "cpu" or args.smoke:
        return ["fp32", "bf16"]
    from aiayn.train.precision import SLOW_FACTOR, cpu_bf16_slowdown

    slowdown = cpu_bf16_slowdown()
    if slowdown <= SLOW_FACTOR:
        return ["fp32", "bf16"]
    print(f"bf16 rows skipped: this CPU emulates bf16 (a matmul takes {slowdown:.0f}× fp32's "
          "time); --precision fp32 bf16 times them anyway", file=sys.stderr)  # fmt: skip
    return ["fp32"]


def _jobs(args: argparse.Namespace) -> list[tuple[tuple, str, dict]]:
    """(result key, worker task, spec) for every measurement, in running order."""
    timing = {"warmup": args.warmup, "reps": args.reps}
    # the MFU denominators: training reports MFU per precision, decoding (fp32) too
    peaks = set(args.precision) if "train" in args.parts else set()
    peaks |= {"fp32"} if "translate" in args.parts else set()
    peaks |= set(args.precision) | {"fp32"} if "lm" in args.parts else set()
    peaks |= set(args.precision) if "bert" in args.parts else set()
    peaks |= set(args.precision) if "vit" in args.parts else set()
    peaks = [p for p in ("fp32", "bf16") if p in peaks]
    jobs = [(("peak", p), "peak", {"precision": p, "n": args.peak_n}) for p in peaks]
    for size in args.size:
        dims = asdict(SIZES[size])
        if "train" in args.parts:
            for precision in args.precision:
                for name in TRAINING:
                    spec = {"contender": name, "dims": dims, "precision": precision, **timing}
                    jobs.append(((size, "train", precision, name), "train", spec))
        if "translate" in args.parts:
            for mode, beam in BEAMS.items():
                for name in TRANSLATION:
                    spec = {"contender": name, "dims": dims, "beam": beam, **timing}
                    jobs.append(((size, "translate", mode, name), "translate", spec))
        if "optimizations" in args.parts:
            for variant, extra in _optimization_variants(args).items():
                spec = {"contender": "aiayn", "dims": dims, "precision": "bf16", **timing}
                jobs.append(((size, "optim", variant), "train", {**spec, **extra}))
            for variant in DECODING_VARIANTS:
                spec = {"contender": "aiayn", "dims": dims, "beam": 4, "variant": variant}
                jobs.append(((size, "optim_decode", variant), "translate", {**spec, **timing}))
    if "lm" in args.parts:
        for size in args.lm_size:
            for precision in args.precision:
                for name in LM:
                    spec = {"contender": name, "size": size, "precision": precision, **timing}
                    jobs.append((("lm", size, "train", precision, name), "lm_train", spec))
            for mode, (batch, sample) in LM_GENERATION.items():
                for name in LM:
                    spec = {"contender": name, "size": size, "batch": batch, "sample": sample}
                    job = (("lm", size, "generate", mode, name), "lm_generate", {**spec, **timing})
                    jobs.append(job)
    if "bert" in args.parts:
        for size in args.bert_size:
            for precision in args.precision:
                for name in BERT:
                    spec = {"contender": name, "size": size, "precision": precision, **timing}
                    jobs.append((("bert", size, "train", precision, name), "bert_train", spec))
            for name in BERT:
                spec = {"contender": name, "size": size, **timing}
                jobs.append((("bert", size, "classify", name), "bert_classify", spec))
    if "vit" in args.parts:
        for size in args.vit_size:
            for mode in ("train", "infer"):
                for precision in args.precision:
                    for name in VIT:
                        spec = {"contender": name, "size": size, "precision": precision, **timing}
                        jobs.append((("vit", size, mode, precision, name), f"vit_{mode}", spec))
    if "attention" in args.parts:
        for T in args.seq_lens:
            for impl in ("math", "sdpa", "window"):
                spec = {"impl": impl, "seq_len": T, "window": args.window}
                spec.update(warmup=min(args.warmup, 1), reps=min(args.reps, 3))
                jobs.append((("attention", T, impl), "attention", spec))
    return jobs


def _optimization_variants(args: argparse.Namespace) -> dict[str, dict]:
    """aiayn's training switches, each against the default (fused Adam, auto attention)."""
    variants = {
        "default (fused Adam, auto attention)": {},
        "foreach Adam": {"optimizer": "foreach"},
        "per-parameter Adam": {"optimizer": "loop"},
        "SDPA attention": {"contender": "aiayn_sdpa"},
        "math attention": {"contender": "aiayn_math"},
        "torch.nn.Dropout (vs aiayn's CPU mask)": {"contender": "aiayn_torch_dropout"},
        "no transparent huge pages": {"thp": False},
        "keep freed memory (the Trainer's malloc setting)": {"keep_freed": True},
    }
    if args.compile:
        variants["torch.compile"] = {"compile": True}
    return variants


def _report(args: argparse.Namespace, results: dict) -> dict:
    peak = {p: results.get(("peak", p), {}).get("flops_per_s") for p in ("fp32", "bf16")}
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {
            "device": args.device,
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            **_peer_versions(),
        },
        "peak_matmul_tflops": {p: _tflops(v) for p, v in peak.items()},
        "sizes": {},
    }
    for size in args.size:
        section = _size_section(size, SIZES[size], results, peak)
        if section:
            report["sizes"][size] = section
    if "attention" in args.parts:
        report["attention"] = {
            "layer": "d_model 256, 8 heads, batch 1, fp32, forward + backward, "
            f"window {args.window}",
            "by_seq_len": {
                T: {impl: results[("attention", T, impl)] for impl in ("math", "sdpa", "window")}
                for T in args.seq_lens
            },
        }
    if "lm" in args.parts:
        report["lm"] = {size: _lm_section(size, results, peak) for size in args.lm_size}
    if "bert" in args.parts:
        report["bert"] = {size: _bert_section(size, results, peak) for size in args.bert_size}
    if "vit" in args.parts:
        report["vit"] = {size: _vit_section(size, results, peak) for size in args.vit_size}
    report["targets"] = _targets(report)
    return report


def _lm_section(size: str, results: dict, peak: dict) -> dict:
    """Training and generation of one LM size: per contender, and aiayn ÷ HF GPT-2."""
    section: dict = {"dims": asdict(LM_SIZES[size]), "training_tokens_per_s": {},
                     "generation_tokens_per_s": {}, "ratios": {}}  # fmt: skip
    _add_training(section, ("lm", size), results, peak, "hf_gpt2")
    for mode in LM_GENERATION:
        by_name = {k[4]: results[k] for k in results if k[:4] == ("lm", size, "generate", mode)}
        if by_name:
            _add_mfu(by_name, peak["fp32"])
            section["generation_tokens_per_s"][mode] = by_name
            section["ratios"][f"{mode}_vs_hf_gpt2"] = _ratio(by_name, "aiayn", "hf_gpt2")
    return section


def _add_training(section: dict, part: tuple, results: dict, peak: dict, peer: str) -> None:
    """Each precision's training results of `part` (e.g. ("lm", size)) into `section`: per
    contender with its MFU, and aiayn ÷ `peer`."""
    for precision in ("fp32", "bf16"):
        key = (*part, "train", precision)
        by_name = {k[len(key)]: results[k] for k in results if k[: len(key)] == key}
        if by_name:
            _add_mfu(by_name, peak[precision])
            section["training_tokens_per_s"][precision] = by_name
            section["ratios"][f"train_{precision}_vs_{peer}"] = _ratio(by_name, "aiayn", peer)


def _bert_section(size: str, results: dict, peak: dict) -> dict:
    """Masked-LM training and classification of one BERT size: per contender, aiayn ÷ HF."""
    section: dict = {"dims": asdict(BERT_SIZES[size]), "training_tokens_per_s": {},
                     "classify_sentences_per_s": {}, "ratios": {}}  # fmt: skip
    _add_training(section, ("bert", size), results, peak, "hf_bert")
    by_name = {k[3]: results[k] for k in results if k[:3] == ("bert", size, "classify")}
    if by_name:
        section["classify_sentences_per_s"] = by_name
        section["ratios"]["classify_vs_hf_bert"] = _ratio(by_name, "aiayn", "hf_bert")
    return section


def _vit_section(size: str, results: dict, peak: dict) -> dict:
    """Training and inference images/s of one ViT size, per precision and contender (with
    MFU), and aiayn ÷ timm."""
    section: dict = {"dims": asdict(VIT_SIZES[size]), "training_images_per_s": {},
                     "inference_images_per_s": {}, "ratios": {}}  # fmt: skip
    for mode, name in (("train", "training"), ("infer", "inference")):
        for precision in ("fp32", "bf16"):
            key = ("vit", size, mode, precision)
            by_name = {k[4]: results[k] for k in results if k[:4] == key}
            if by_name:
                _add_mfu(by_name, peak[precision])
                section[f"{name}_images_per_s"][precision] = by_name
                a, b = by_name.get("aiayn", {}), by_name.get("timm", {})
                ratio = None
                if "images_per_s" in a and "images_per_s" in b:
                    ratio = round(a["images_per_s"] / b["images_per_s"], 2)
                section["ratios"][f"{mode}_{precision}_vs_timm"] = ratio
    return section


def _size_section(size: str, dims: Dims, results: dict, peak: dict) -> dict:
    section: dict = {}
    training = {
        precision: {
            key[3]: results[key] for key in results if key[:3] == (size, "train", precision)
        }
        for precision in ("fp32", "bf16")
    }
    training = {p: r for p, r in training.items() if r}
    for precision, by_name in training.items():
        _add_mfu(by_name, peak[precision])
    translation = {
        mode: {key[3]: results[key] for key in results if key[:3] == (size, "translate", mode)}
        for mode in BEAMS
    }
    translation = {m: r for m, r in translation.items() if r}
    for by_name in translation.values():
        _add_mfu(by_name, peak["fp32"])  # decoding runs in fp32
    optim = {key[2]: results[key] for key in results if key[:2] == (size, "optim")}
    optim_decode = {key[2]: results[key] for key in results if key[:2] == (size, "optim_decode")}
    for r in (*optim.values(), *optim_decode.values()):
        r.pop("flops_per_s", None)
    if training:
        section["training_tokens_per_s"] = training
    if translation:
        section["translation_tokens_per_s"] = translation
    if optim:
        section["optimizations_bf16"] = optim
    if optim_decode:
        section["optimizations_beam4_fp32"] = optim_decode
    if section:
        section["dims"] = asdict(dims)
        section["ratios"] = _ratios(training, translation)
    return section


def _ratios(training: dict, translation: dict) -> dict:
    ratios = {}
    for precision, by_name in training.items():
        for peer in ("hf_marian", "torch_transformer"):
            ratios[f"train_{precision}_vs_{peer}"] = _ratio(by_name, "aiayn", peer)
    for mode, by_name in translation.items():
        for peer in ("hf_marian", "ctranslate2"):
            ratios[f"{mode}_vs_{peer}"] = _ratio(by_name, "aiayn", peer)
    return ratios


def _ratio(by_name: dict, ours: str, peer: str) -> float | None:
    a, b = by_name.get(ours, {}), by_name.get(peer, {})
    if "tokens_per_s" not in a or "tokens_per_s" not in b:
        return None
    return round(a["tokens_per_s"] / b["tokens_per_s"], 2)


def _targets(report: dict) -> list[dict]:
    """Issue 4's targets, each with its measured value (None when not measured in this run)."""
    m30k = report["sizes"].get("multi30k", {})
    r = m30k.get("ratios", {})
    base_fp32 = report["sizes"].get("base", {}).get("training_tokens_per_s", {}).get("fp32", {})
    rows = [
        ("training fp32 ≥ 1.5× HF Marian (multi30k)", r.get("train_fp32_vs_hf_marian"), 1.5),
        ("training bf16 ≥ 1.5× HF Marian (multi30k)", r.get("train_bf16_vs_hf_marian"), 1.5),
        ("greedy ≥ 2× HF generate (multi30k)", r.get("greedy_vs_hf_marian"), 2.0),
        ("beam 4 ≥ 3× HF generate (multi30k)", r.get("beam4_vs_hf_marian"), 3.0),
        ("beam 4 within 1.5× of CTranslate2 (multi30k)", r.get("beam4_vs_ctranslate2"), 1 / 1.5),
        ("fp32 training MFU ≥ 50% (base)", base_fp32.get("aiayn", {}).get("mfu"), 0.5),
    ]
    for size, lm in report.get("lm", {}).items():
        r = lm["ratios"]
        for key in sorted(r):
            threshold = 1.3 if key.startswith("train") else 1.5
            what = "training" if key.startswith("train") else "generation"
            rows.append((f"LM {what} {key} ≥ {threshold}× HF GPT-2 ({size})", r[key], threshold))
    for size, bert in report.get("bert", {}).items():
        r = bert["ratios"]
        for key in sorted(r):
            threshold = 1.3 if key.startswith("train") else 1.5
            what = "training" if key.startswith("train") else "classification"
            rows.append((f"BERT {what} {key} ≥ {threshold}× HF ({size})", r[key], threshold))
    for size, vit in report.get("vit", {}).items():
        for key, value in sorted(vit["ratios"].items()):
            threshold = 1.0 if key.startswith("train") else 1.2
            what = "training" if key.startswith("train") else "inference"
            rows.append((f"ViT {what} {key} ≥ {threshold}× timm ({size})", value, threshold))
    return [
        {"target": name, "value": value, "threshold": round(threshold, 3),
         "met": None if value is None else value >= threshold}
        for name, value, threshold in rows
    ]  # fmt: skip


def record_rows(path: Path, report: dict) -> None:
    """Append one row per size to the table that ends `path` (its header is added if absent)."""
    text = path.read_text() if path.exists() else ""
    if TABLE_HEADER not in text:
        text = text.rstrip("\n") + "\n\n## Harness runs\n\n" + TABLE_HEADER
    for size, section in report["sizes"].items():
        r = section.get("ratios", {})
        train = section.get("training_tokens_per_s", {})
        mfu = [train.get(p, {}).get("aiayn", {}).get("mfu") for p in ("fp32", "bf16")]
        cells = [
            report["date"], size, f"{report['machine']['device']} ×{report['machine']['threads']}",
            *(_cell(r.get(k)) for k in (
                "train_fp32_vs_hf_marian", "train_bf16_vs_hf_marian",
                "train_fp32_vs_torch_transformer", "train_bf16_vs_torch_transformer",
                "greedy_vs_hf_marian", "beam4_vs_hf_marian", "beam4_vs_ctranslate2",
            )),
            *(f"{m:.0%}" if m is not None else "–" for m in mfu),
        ]  # fmt: skip
        text += "| " + " | ".join(cells) + " |\n"
    atomic_write_text(path, text)


def _add_mfu(by_name: dict, peak: float | None) -> None:
    """Replace each result's FLOP/s by its fraction of the measured matmul `peak`."""
    for r in by_name.values():
        if "flops_per_s" in r and peak:
            r["mfu"] = _significant(r.pop("flops_per_s") / peak)


def _significant(x: float, digits: int = 3) -> float:
    """`x` to a few significant digits (a tiny smoke model's MFU must not round to 0)."""
    return float(f"{x:.{digits}g}")


def _cell(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def _tflops(flops: float | None) -> float | None:
    return None if flops is None else round(flops / 1e12, 3)


def _peer_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("transformers", "ctranslate2", "timm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    main()
