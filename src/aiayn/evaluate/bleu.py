"""Translation metrics through sacreBLEU, the field's reference implementation.

Two BLEU conventions are reported because the literature mixes them:
- `bleu`: sacreBLEU on detokenized, true-cased output (its default 13a tokenization), with the
  signature that makes the number reproducible;
- `bleu_lc_tok`: BLEU on lowercased, 13a-tokenized text, the convention of most Multi30k papers.
"""

from __future__ import annotations

from collections.abc import Sequence


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, object]:
    """BLEU (two conventions) and chrF of `hypotheses` against one reference each."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    hyps, refs = list(hypotheses), [list(references)]
    bleu = BLEU()
    bleu_lc = BLEU(lowercase=True, tokenize="13a")
    chrf = CHRF()
    b, blc, c = (
        bleu.corpus_score(hyps, refs),
        bleu_lc.corpus_score(hyps, refs),
        chrf.corpus_score(hyps, refs),
    )
    return {
        "bleu": round(b.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "bleu_lc_tok": round(blc.score, 2),
        "bleu_lc_tok_signature": str(bleu_lc.get_signature()),
        "chrf": round(c.score, 2),
        "chrf_signature": str(chrf.get_signature()),
    }


def bleu_score(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"
) -> float:
    """sacreBLEU corpus BLEU (detokenized, true-cased). `tokenize="char"` scores characters,
    the meaningful choice when every output is one word (German number words)."""
    from sacrebleu.metrics import BLEU

    return float(BLEU(tokenize=tokenize).corpus_score(list(hypotheses), [list(references)]).score)


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of hypotheses identical to their reference."""
    if not references:
        return 0.0
    return sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(references)
