"""The paper's Table 3 at small scale: which changes to the base model move BLEU and perplexity,
and do they move them the way the paper's did? (QUESTIONS.md 1, 6, 17, 21, 22)

    python -m experiments.table3 --out docs/why      # ~70 minutes on 2 CPU cores (19 runs)

Each row trains one variant of a small base model on Multi30k En→De for the same budget
(`--steps` optimiser steps of ≤ 4,096 tokens, cosine schedule, seed 0; `experiments.mt`) and
reports validation BLEU (greedy) and per-token perplexity, beside the paper's newstest2013
figures for the row it scales down. Our base is the paper's a quarter in width and a third in
depth: N = 2, d_model = 128, d_ff = 512, h = 8, d_k = d_v = 16, P_drop = 0.1, ε_ls = 0.1.

  (A) heads and d_k at fixed compute: h = 1, 4, 16, 32 with d_k = d_v = d_model / h;
      and how different the heads' attention is (mean pairwise Jensen–Shannon divergence);
  (B) smaller query/key size d_k (`LayerConfig.d_k`), values unchanged;
  (C) size: N, d_model (h fixed: d_k grows with it), d_ff;
  (D) dropout P_drop and label smoothing ε_ls;
  (E) learned positions instead of sinusoids.

A row's direction agrees with the paper's when both moved BLEU (or perplexity) the same way,
where a change inside the noise band counts as no move. Ours is measured: the base trained
again with the next seed (row "noise"), its BLEU and perplexity difference (at least 0.3 BLEU
and 2%); the paper's table: 0.15 BLEU and 0.5%, its rounding. Every row's run is kept in
`--runs` with its figures: a stopped run of the table starts again at the first row without
them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiayn.config import ModelConfig
from aiayn.data.parallel import read_lines
from aiayn.io import atomic_write_text
from aiayn.models import EncoderDecoder, load_pretrained
from aiayn.tokenizers import TokenizerPair
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.heads import head_maps
from experiments.mt import DEFAULT_DATA, check_data, small_smoke_data, train_multi30k
from experiments.numbers import teacher_batch

BASE = dict(d_model=128, n_heads=8, d_ff=512, n_encoder_layers=2, n_decoder_layers=2,
            dropout=0.1, max_len=128)  # fmt: skip
SMOKE_BASE = dict(d_model=64, n_heads=8, d_ff=64, n_encoder_layers=1, n_decoder_layers=1,
                  dropout=0.1, max_len=64)  # fmt: skip
STEPS = 400
LABEL_SMOOTHING = 0.1
#: noise bands: a smaller change counts as none. Ours is measured — the base trained again
#: with the next seed (row "base_seed1") — and these are its floor; the paper's is its rounding.
BAND = {"ours": {"bleu": 0.3, "ppl": 0.02}, "paper": {"bleu": 0.15, "ppl": 0.005}}
METRICS = ("bleu", "ppl")  # each row's two directions against the base
ARROW = {-1: "↓", 0: "=", 1: "↑"}  # a direction as the tables print it


@dataclass(frozen=True)
class Row:
    group: str  # "base", "A" … "E"
    name: str  # the run's directory
    ours: str  # what changes, at our scale
    paper: str  # the paper's row it scales down
    paper_ppl: float  # newstest2013, per wordpiece (Vaswani et al. 2017, Table 3)
    paper_bleu: float
    changes: dict[str, Any] = field(default_factory=dict)  # model fields, or label_smoothing
    seed_offset: int = 0  # trained with seed + this (the noise row)


ROWS = [
    Row("base", "base", "N 2, d_model 128, d_ff 512, h 8, d_k 16", "N 6, 512, 2048, h 8, d_k 64",
        4.92, 25.8),
    Row("noise", "base_seed1", "the base again, seed + 1", "(none: one run per row)", 4.92, 25.8,
        seed_offset=1),
    Row("A", "heads1", "h 1, d_k = d_v 128", "h 1, d_k = d_v 512", 5.29, 24.9, {"n_heads": 1}),
    Row("A", "heads4", "h 4, d_k = d_v 32", "h 4, d_k = d_v 128", 5.00, 25.5, {"n_heads": 4}),
    Row("A", "heads16", "h 16, d_k = d_v 8", "h 16, d_k = d_v 32", 4.91, 25.8, {"n_heads": 16}),
    Row("A", "heads32", "h 32, d_k = d_v 4", "h 32, d_k = d_v 16", 5.01, 25.4, {"n_heads": 32}),
    Row("B", "dk8", "d_k 8", "d_k 32", 5.01, 25.4, {"d_k": 8}),
    Row("B", "dk4", "d_k 4", "d_k 16", 5.16, 25.1, {"d_k": 4}),
    Row("C", "layers1", "N 1", "N 2", 6.11, 23.7, {"n_encoder_layers": 1, "n_decoder_layers": 1}),
    Row("C", "layers4", "N 4", "N 8", 4.88, 25.5, {"n_encoder_layers": 4, "n_decoder_layers": 4}),
    Row("C", "width64", "d_model 64 (d_k 8)", "d_model 256 (d_k 32)", 5.75, 24.5,
        {"d_model": 64}),
    Row("C", "width256", "d_model 256 (d_k 32)", "d_model 1024 (d_k 128)", 4.66, 26.0,
        {"d_model": 256}),
    Row("C", "ff256", "d_ff 256", "d_ff 1024", 5.12, 25.4, {"d_ff": 256}),
    Row("C", "ff1024", "d_ff 1024", "d_ff 4096", 4.75, 26.2, {"d_ff": 1024}),
    Row("D", "dropout0", "P_drop 0.0", "P_drop 0.0", 5.77, 24.6, {"dropout": 0.0}),
    Row("D", "dropout2", "P_drop 0.2", "P_drop 0.2", 4.95, 25.5, {"dropout": 0.2}),
    Row("D", "smoothing0", "ε_ls 0.0", "ε_ls 0.0", 4.67, 25.3, {"label_smoothing": 0.0}),
    Row("D", "smoothing2", "ε_ls 0.2", "ε_ls 0.2", 5.47, 25.7, {"label_smoothing": 0.2}),
    Row("E", "learned", "learned positions", "learned positions", 4.92, 25.7,
        {"positional": "learned"}),
]  # fmt: skip
SMOKE_ROWS = ("base", "base_seed1", "heads4", "dk4", "layers1", "smoothing0", "learned")


def direction(change: float, band: float) -> int:
    """-1, 0 or +1: which way a change went, 0 inside the noise band."""
    return 0 if abs(change) <= band else (1 if change > 0 else -1)


def noise_band(results: dict[str, dict[str, Any] | None]) -> dict[str, float]:
    """Our noise band: how far the base moved when only its seed changed (BLEU points and
    relative perplexity), and never below `BAND["ours"]`."""
    base, again = results.get("base"), results.get("base_seed1")
    if base is None or again is None:
        return dict(BAND["ours"])
    return {
        "bleu": max(abs(again["bleu"] - base["bleu"]), BAND["ours"]["bleu"]),
        "ppl": max(abs(again["ppl"] / base["ppl"] - 1), BAND["ours"]["ppl"]),
    }


def agreement(row: Row, result: dict[str, Any], base: dict[str, Any],
              band: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Each metric's direction against the base, ours and the paper's, and whether they agree.
    Perplexity moves are relative (a ratio), BLEU moves in points; `band` is ours (default:
    `BAND["ours"]`)."""
    band = band or BAND["ours"]
    base_row = ROWS[0]
    moves = {
        "bleu": (result["bleu"] - base["bleu"], row.paper_bleu - base_row.paper_bleu),
        "ppl": (
            result["ppl"] / base["ppl"] - 1,
            row.paper_ppl / base_row.paper_ppl - 1,
        ),
    }
    out = {}
    for metric, (ours, paper) in moves.items():
        d_ours = direction(ours, band[metric])
        d_paper = direction(paper, BAND["paper"][metric])
        out[metric] = {"ours": d_ours, "paper": d_paper, "agree": d_ours == d_paper}
    return out


def head_divergence_of(model: EncoderDecoder, run: Path, data: Path,
                       sentences: int = 200) -> list[float] | None:  # fmt: skip
    """Mean pairwise Jensen–Shannon divergence (bits) of the encoder's heads, per layer, on
    the first validation sentences (tokenized as the run in `run` did); None for one head."""
    if model.config.n_heads < 2:
        return None
    src, ref = (read_lines(data / f"val.{lang}.gz")[:sentences] for lang in ("en", "de"))
    batch = teacher_batch(TokenizerPair.load(run), src, ref)
    maps = head_maps(model, batch.src, batch.tgt_in)
    return [round(d, 3) for d in maps["encoder_self"]["divergence"]]


def train_row(row: Row, base: dict[str, Any], data: Path, runs: Path, steps: int,
              seed: int) -> None:  # fmt: skip
    """Train row `row` unless its run directory holds a complete run of the same settings
    (the directory emptied first); its figures go to `table3_row.json` there."""
    settings = row_settings(row, base, steps, seed)
    run = runs / row.name
    if kept_row(run, settings) is not None:
        return
    shutil.rmtree(run, ignore_errors=True)
    seed = settings["seed"]
    seed_everything(seed)
    model_config = ModelConfig.create(**settings["model"])
    result = train_multi30k(data, run, model_config, steps, seed,
                            task={"label_smoothing": settings["label_smoothing"]})  # fmt: skip
    model = load_pretrained(run)  # as trained (the vocabulary sizes set by the tokenizer)
    result["settings"] = settings
    result["parameters"] = sum(p.numel() for p in model.parameters())
    heads_vary = row.group in ("base", "A")
    result["head_divergence"] = head_divergence_of(model, run, data) if heads_vary else None
    atomic_write_text(run / "table3_row.json", json.dumps(result, indent=1) + "\n")


def row_settings(row: Row, base: dict[str, Any], steps: int, seed: int) -> dict[str, Any]:
    """What a row's run depends on: its model fields, label smoothing, steps and seed."""
    changes = dict(row.changes)
    smoothing = changes.pop("label_smoothing", LABEL_SMOOTHING)
    return {"model": {**base, **changes}, "label_smoothing": smoothing, "steps": steps,
            "seed": seed + row.seed_offset}  # fmt: skip


def kept_row(run: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The figures of a complete run of the same settings in `run`, or None."""
    done = run / "table3_row.json"
    if not done.is_file():
        return None
    kept = json.loads(done.read_text(encoding="utf-8"))
    return kept if kept["settings"] == settings else None


def run(out: Path, seed: int, smoke: bool, data: Path, runs: Path, steps: int | None,
        only: list[str] | None) -> dict[str, Any]:  # fmt: skip
    rows = [r for r in ROWS if not smoke or r.name in SMOKE_ROWS]
    if only:
        unknown = sorted(set(only) - {r.name for r in ROWS})
        if unknown:
            raise SystemExit(f"--only: no row named {', '.join(unknown)}; rows: "
                             + ", ".join(r.name for r in ROWS))  # fmt: skip
    if smoke:
        data, base, steps = small_smoke_data(runs / "smoke_data"), SMOKE_BASE, 3
    else:
        data, base, steps = check_data(data), BASE, steps or STEPS
    for r in rows:
        if not only or r.name in only:
            train_row(r, base, data, runs, steps, seed)
    # the table: every row with a complete run (`--only` runs fill it in parts)
    results = {r.name: kept_row(runs / r.name, row_settings(r, base, steps, seed)) for r in rows}
    rows = [r for r in rows if results[r.name] is not None]
    if results.get("base") is None:
        raise SystemExit(f"table3: no complete base run in {runs / 'base'}; train it first")
    band = noise_band(results)
    table = []
    for r in rows:
        res = results[r.name]
        entry = {
            "group": r.group, "name": r.name, "ours": r.ours, "paper": r.paper,
            "bleu": res["bleu"], "ppl": res["ppl"], "parameters": res["parameters"],
            "minutes": res["minutes"], "head_divergence": res["head_divergence"],
            "paper_bleu": r.paper_bleu, "paper_ppl": r.paper_ppl,
        }  # fmt: skip
        if r.group not in ("base", "noise"):
            entry["direction"] = agreement(r, res, results["base"], band)
        table.append(entry)
    figures: dict[str, Any] = {"steps": steps, "base": base, "noise_band": band, "rows": table,
                               "groups": group_verdicts(table)}  # fmt: skip
    # the rows' own training minutes: this call may have trained none of them
    figures["compute_minutes"] = round(sum(e["minutes"] for e in table), 1)
    figures["answer"] = answer(figures)
    plot(figures, out / "table3.png")
    print(render(figures))
    return figures


def group_verdicts(table: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per row group: how many of its (row, metric) directions agree with the paper's, and
    the verdict (agrees when at least half do)."""
    verdicts = {}
    for group in "ABCDE":
        checks = [e["direction"][m]["agree"] for e in table if e["group"] == group
                  for m in METRICS]  # fmt: skip
        if checks:
            verdicts[group] = {"agree": sum(checks), "of": len(checks),
                               "agrees": 2 * sum(checks) >= len(checks)}  # fmt: skip
    return verdicts


def render(figures: dict[str, Any]) -> str:
    """The table as Markdown: ours beside the paper's, arrows for each direction."""
    lines = [
        "| row | ours | BLEU | PPL | params | paper's row | paper BLEU | paper PPL | agrees |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in figures["rows"]:
        d = e.get("direction")
        ours = {m: f" {ARROW[d[m]['ours']]}" if d else "" for m in METRICS}
        paper = {m: f" {ARROW[d[m]['paper']]}" if d else "" for m in METRICS}
        agrees = "" if not d else " ".join(
            f"{m.upper()} {'yes' if d[m]['agree'] else 'no'}" for m in METRICS
        )  # fmt: skip
        paper_cells = (f"{e['paper_bleu']}{paper['bleu']} | {e['paper_ppl']}{paper['ppl']}"
                       if e["group"] != "noise" else "— | —")  # fmt: skip
        lines.append(
            f"| {e['group']} | {e['ours']} | {e['bleu']:.2f}{ours['bleu']} | "
            f"{e['ppl']:.2f}{ours['ppl']} | {e['parameters'] / 1e6:.1f}M | {e['paper']} | "
            f"{paper_cells} | {agrees} |"
        )
    return "\n".join(lines)


def answer(figures: dict[str, Any]) -> str:
    groups = figures["groups"]
    agree = [g for g, v in groups.items() if v["agrees"]]
    disagree = [g for g, v in groups.items() if not v["agrees"]]
    band = figures["noise_band"]
    text = (
        f"At {figures['steps']} steps per row, {len(agree)} of {len(groups)} row groups move "
        f"BLEU and perplexity the way the paper's did ({', '.join(agree) or 'none'}), counting "
        f"changes within the base's seed-to-seed difference ({band['bleu']:.2f} BLEU, "
        f"{band['ppl']:.1%} perplexity) as none"
    )
    if disagree:
        text += f"; {', '.join(disagree)} {'does' if len(disagree) == 1 else 'do'} not"
    return text + "."


def plot(figures: dict[str, Any], path: Path) -> None:
    """BLEU change against the base, ours beside the paper's, one bar pair per row."""
    plt = pyplot()
    rows = [e for e in figures["rows"] if e["group"] not in ("base", "noise")]
    base = next(e for e in figures["rows"] if e["group"] == "base")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = range(len(rows))
    ours = [e["bleu"] - base["bleu"] for e in rows]
    paper = [e["paper_bleu"] - base["paper_bleu"] for e in rows]
    ax.bar([x - 0.2 for x in xs], ours, 0.4, label=f"ours (Multi30k val, base {base['bleu']:.1f})")
    ax.bar([x + 0.2 for x in xs], paper, 0.4,
           label=f"paper (newstest2013, base {base['paper_bleu']})")  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    noise = figures["noise_band"]["bleu"]
    ax.axhspan(-noise, noise, color="0.85", zorder=0, label=f"ours: seed-to-seed (±{noise:.1f})")
    ax.set_xticks(list(xs), [f"{e['group']}: {e['ours']}" for e in rows], rotation=60,
                  ha="right", fontsize=7)  # fmt: skip
    title = f"Table 3, small: each row's BLEU change ({figures['steps']} steps per row)"
    ax.set(ylabel="BLEU − base BLEU", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"Multi30k's train/val .gz files (default: {DEFAULT_DATA})")  # fmt: skip
    p.add_argument("--runs", type=Path, default=Path("runs") / "table3",
                   help="each row's run and figures (default: runs/table3)")  # fmt: skip
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimiser steps per row (default: {STEPS})")  # fmt: skip
    p.add_argument("--only", nargs="+", metavar="ROW",
                   help="train these rows only (e.g. base heads1 dk4); the table then shows "
                        "every row whose run is complete")  # fmt: skip


main = cli("table3", __doc__, run, options)

if __name__ == "__main__":
    main()
