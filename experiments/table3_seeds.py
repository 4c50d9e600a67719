"""Table 3, small, under two seeds: which rows move BLEU and perplexity the same way in both?

    python -m experiments.table3 --seed 1 --out runs/table3_seed1 --runs runs/table3_seed1
    python -m experiments.table3_seeds docs/why/table3.json runs/table3_seed1/table3.json

Reads two tables that `experiments.table3` wrote (the same rows and budget, another seed) and
prints, per row, each metric's direction against its own base under either seed, whether the
two agree, and whether each agrees with the paper — a row whose arrow flips with the seed
says nothing about the paper's. Prints Markdown; writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from experiments.table3 import ARROW, METRICS


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Per row (not base or noise) and metric: the directions under each table, whether they
    are the same, and whether both agree with the paper; and the counts."""
    if first["steps"] != second["steps"] or first["base"] != second["base"]:
        raise SystemExit("table3_seeds: the two tables differ in steps or base model")
    other = {e["name"]: e for e in second["rows"]}
    rows, same, both_agree, checks = [], 0, 0, 0
    for e in first["rows"]:
        if "direction" not in e or "direction" not in other.get(e["name"], {}):
            continue
        f = other[e["name"]]
        entry: dict[str, Any] = {"group": e["group"], "name": e["name"], "ours": e["ours"]}
        for m in METRICS:
            a, b = e["direction"][m], f["direction"][m]
            entry[m] = {"first": a["ours"], "second": b["ours"], "paper": a["paper"],
                        "same": a["ours"] == b["ours"],
                        "both_agree": a["agree"] and b["agree"]}  # fmt: skip
            same += entry[m]["same"]
            both_agree += entry[m]["both_agree"]
            checks += 1
        rows.append(entry)
    return {"rows": rows, "same": same, "both_agree": both_agree, "of": checks,
            "seeds": [first["meta"]["seed"], second["meta"]["seed"]],
            "groups": {g: [first["groups"][g]["agrees"], second["groups"][g]["agrees"]]
                       for g in first["groups"] if g in second["groups"]}}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    s0, s1 = result["seeds"]
    lines = [
        f"| row | ours | BLEU seed {s0} | seed {s1} | paper | PPL seed {s0} | seed {s1} | paper |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        cells = [
            f"{ARROW[r[m]['first']]} | {ARROW[r[m]['second']]} | {ARROW[r[m]['paper']]}"
            for m in METRICS
        ]
        lines.append(f"| {r['group']} | {r['ours']} | {cells[0]} | {cells[1]} |")
    groups = ", ".join(
        f"{g} {'/'.join('yes' if v else 'no' for v in verdicts)}"
        for g, verdicts in result["groups"].items()
    )
    lines.append("")
    lines.append(
        f"The same direction under both seeds: {result['same']} of {result['of']} (row, metric) "
        f"pairs; agreeing with the paper under both: {result['both_agree']}. Group verdicts "
        f"(seed {s0}/seed {s1}): {groups}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m experiments.table3_seeds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("first", type=Path, help="table3.json of one seed")
    p.add_argument("second", type=Path, help="table3.json of another seed")
    args = p.parse_args(argv)
    tables = []
    for path in (args.first, args.second):
        if not path.is_file():
            p.error(f"{path}: no such file; write it with python -m experiments.table3")
        try:
            tables.append(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            p.error(f"{path}: not a JSON file ({err}); give the table3.json a run wrote")
    try:
        result = compare(*tables)
    except (KeyError, TypeError) as err:
        p.error(f"not a table written by python -m experiments.table3 (no field {err})")
    print(render(result))
    return result


if __name__ == "__main__":
    main()
