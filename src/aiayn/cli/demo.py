"""`aiayn demo`: the embedded default — train English → German number words from nothing."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small Transformer on English → German number words (no data needed)",
        description="Generates English/German number words for 0–999,999 (test numbers never "
        "appear in training), trains a small Transformer for a few minutes on the CPU, then "
        "prints sample translations, exact-match accuracy and BLEU on the unseen test numbers, "
        "and saves a cross-attention heatmap.",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument(
        "--max-minutes", type=float, default=None, help="training time budget (default: 3.5)"
    )
    p.add_argument("--beam", type=int, default=4, help="beam size for the test set (default: 4)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from aiayn.tasks.number_demo import demo_train_config, run_demo

    out = Path(args.out)
    if (out / "model").exists():  # a demo is a fresh run: replace the previous one
        shutil.rmtree(out / "model")
    train = demo_train_config(args.max_minutes)
    if not args.json:
        print(f"training English → German number words into {out} "
              f"(about {train.max_minutes:g} minutes on a CPU) …", flush=True)  # fmt: skip
    r = run_demo(out, seed=args.seed, train_config=train, beam=args.beam,
                 progress=False if args.no_progress else None)  # fmt: skip
    if args.json:
        summary = {
            "out": str(r.out_dir), "exact_match": r.exact_match, "test_sentences": r.test_sentences,
            "bleu_char": r.bleu_char, "chrf": r.chrf, "samples": r.samples,
            "heatmap": str(r.heatmap), "train_seconds": round(r.train_seconds, 1), "steps": r.steps,
        }  # fmt: skip
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    print(f"\ntrained {r.steps} steps in {r.train_seconds / 60:.1f} min\n")
    print("sample translations of numbers never seen in training:")
    for en, ref, out_text in r.samples:
        mark = "✓" if out_text == ref else "✗"
        print(f"  {mark} {en}\n      → {out_text}" + ("" if out_text == ref else f"  (ref: {ref})"))
    print(f"\nexact match on {r.test_sentences} unseen test numbers: {100 * r.exact_match:.1f}%")
    print(f"BLEU {r.bleu_char:.1f} on characters (each German number is one word, so word "
          f"BLEU would be 0 for any output)   chrF {r.chrf:.1f}")  # fmt: skip
    print(f"cross-attention heatmap: {r.heatmap}")
    print(f"model directory: {out / 'model'}  (try: aiayn translate --model {out / 'model'})")
    return 0
