"""Metrics: BLEU and chrF via sacreBLEU."""

from aiayn.evaluate.bleu import bleu_score, corpus_scores, exact_match

__all__ = ["bleu_score", "corpus_scores", "exact_match"]
