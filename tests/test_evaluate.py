"""`aiayn evaluate`'s scores equal sacreBLEU's own command line on the same files, digit for
digit and signature for signature: BLEU (true-cased, 13a), BLEU on lowercased 13a tokens, chrF,
and the character BLEU of the number-word demo. The hypotheses are a perturbed copy of the
Multi30k validation references (no model needed: `translate` is replaced by a stand-in that
returns them), and sacreBLEU runs as a separate process, as a user would run it."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from aiayn import translator
from aiayn.cli import main
from aiayn.evaluate import bleu_score, corpus_scores, exact_match

MULTI30K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"

needs_shared = pytest.mark.skipif(
    not (MULTI30K / "val.de.gz").is_file() or not (MULTI30K / "val.en.gz").is_file(),
    reason=f"Multi30k's val.en.gz/val.de.gz are not in {MULTI30K} (the shared/ folder next to "
    "the repository)",
)


def perturb(line: str, rng: random.Random, vocabulary: list[str]) -> str:
    """A plausible wrong translation: words dropped, swapped, replaced, re-cased, or the final
    period split off (which 13a tokenization undoes); about one line in six is left alone."""
    words = line.split()
    kind = rng.randrange(6)
    if kind == 0 or len(words) < 3:
        return line
    i = rng.randrange(len(words) - 1)
    if kind == 1:
        del words[i]
    elif kind == 2:
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 3:
        words[i] = rng.choice(vocabulary)
    elif kind == 4:  # case only: lowercased BLEU does not see it
        words = [w.lower() if j % 2 else w.upper() for j, w in enumerate(words)]
    else:
        words[-1] = words[-1][:-1] + " " + words[-1][-1:] if words[-1][-1:] in ".!?" else words[-1]
    return " ".join(words)


@pytest.fixture(scope="module")
def hypotheses(tmp_path_factory) -> tuple[Path, list[str]]:
    """hyp.de, a perturbed copy of Multi30k's val.de (1,014 lines), and its lines."""
    with gzip.open(MULTI30K / "val.de.gz", "rt", encoding="utf-8") as f:
        references = f.read().splitlines()
    rng = random.Random(0)
    vocabulary = sorted({w for line in references for w in line.split()})
    lines = [perturb(line, rng, vocabulary) for line in references]
    path = tmp_path_factory.mktemp("evaluate") / "hyp.de"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path, lines


def sacrebleu_cli(reference: Path, hypothesis: Path, *flags: str) -> list[dict]:
    """sacreBLEU's command line, its JSON output with 2 decimals (aiayn's rounding)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sacrebleu", str(reference), "-i", str(hypothesis), "-w", "2",
         *flags],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    return out if isinstance(out, list) else [out]


def same_digits(ours: float, theirs: float) -> None:
    assert f"{ours:.2f}" == f"{theirs:.2f}" and ours == theirs, (ours, theirs)


@needs_shared
def test_aiayn_evaluate_scores_as_the_sacrebleu_command_line(hypotheses, tmp_path, capsys,
                                                              monkeypatch):  # fmt: skip
    hyp_path, hyp_lines = hypotheses
    src, ref = MULTI30K / "val.en.gz", MULTI30K / "val.de.gz"

    def stand_in(models, lines, **kwargs):
        assert len(lines) == len(hyp_lines) == 1014  # the source file's lines
        return list(hyp_lines)

    monkeypatch.setattr(translator, "translate", stand_in)
    assert main(["evaluate", "--model", str(tmp_path), "--src", str(src), "--ref", str(ref)]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert ours["sentences"] == 1014

    bleu, chrf = sacrebleu_cli(ref, hyp_path, "-m", "bleu", "chrf")
    (bleu_lc,) = sacrebleu_cli(ref, hyp_path, "-m", "bleu", "-lc", "-tok", "13a")
    assert (bleu["name"], chrf["name"], bleu_lc["name"]) == ("BLEU", "chrF2", "BLEU")
    same_digits(ours["bleu"], bleu["score"])
    assert ours["bleu_signature"] == bleu["signature"]
    same_digits(ours["chrf"], chrf["score"])
    assert ours["chrf_signature"] == chrf["signature"]
    same_digits(ours["bleu_lc_tok"], bleu_lc["score"])
    assert ours["bleu_lc_tok_signature"] == bleu_lc["signature"]
    assert "case:lc" in bleu_lc["signature"] and "tok:13a" in bleu_lc["signature"]
    # the perturbations bite, and the re-cased lines only hurt true-cased BLEU
    assert 30 < ours["bleu"] < ours["bleu_lc_tok"] < 100


@needs_shared
def test_scoring_functions_equal_the_sacrebleu_command_line(hypotheses):
    """The functions behind `aiayn evaluate` and the demo's character BLEU, on lists."""
    hyp_path, hyp_lines = hypotheses
    ref = MULTI30K / "val.de.gz"
    with gzip.open(ref, "rt", encoding="utf-8") as f:
        references = f.read().splitlines()
    scores = corpus_scores(hyp_lines, references)
    bleu, chrf = sacrebleu_cli(ref, hyp_path, "-m", "bleu", "chrf")
    (bleu_lc,) = sacrebleu_cli(ref, hyp_path, "-m", "bleu", "-lc", "-tok", "13a")
    (char,) = sacrebleu_cli(ref, hyp_path, "-m", "bleu", "-tok", "char")
    same_digits(scores["bleu"], bleu["score"])
    same_digits(scores["chrf"], chrf["score"])
    same_digits(scores["bleu_lc_tok"], bleu_lc["score"])
    assert (scores["bleu_signature"], scores["chrf_signature"]) == (
        bleu["signature"], chrf["signature"],
    )  # fmt: skip
    assert scores["bleu_lc_tok_signature"] == bleu_lc["signature"]
    same_digits(round(bleu_score(hyp_lines, references, tokenize="char"), 2), char["score"])


def test_exact_match_is_the_share_of_identical_lines():
    refs = ["eins", "zwei", "drei", "vier", "fünf"]
    assert exact_match(["eins", "zwei", "drei", "vier", "fünf"], refs) == 1.0
    assert exact_match(["eins", "zwei ", "Drei", "vier", "sechs"], refs) == 0.4
    assert exact_match([], []) == 0.0
    with pytest.raises(ValueError):
        exact_match(["eins"], refs)
