"""Relation extraction micro F1 (positive classes only) and accuracy (QA)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from blurbkit.metrics.base import METRICS, MetricResult, check_lengths, prf, ratio


@METRICS.register("relation_micro_f1")
def relation_micro_f1(
    gold: Sequence[str], pred: Sequence[str], *, negative_label: str | None
) -> MetricResult:
    """Micro P/R/F1 over the positive classes (the ChemProt / DDI / GAD evaluation).

    The negative label never counts as a hit: gold negative predicted positive is a false
    positive; gold positive predicted negative a false negative; gold positive predicted as
    another positive class is both. Equals sklearn's ``precision_recall_fscore_support(
    labels=<positive labels>, average="micro")``; for a binary task (GAD, AIMed) it is the F1
    of the positive class. With ``negative_label=None`` every class counts (= accuracy).
    """
    check_lengths(gold, pred, "labels")
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter(g for g in gold if g != negative_label)
    n_pred: Counter[str] = Counter(p for p in pred if p != negative_label)
    for g, p in zip(gold, pred, strict=True):
        if g == p and g != negative_label:
            tp[g] += 1
    micro = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    return {
        "score": micro["f1"],
        "precision": micro["precision"],
        "recall": micro["recall"],
        "tp": sum(tp.values()),
        "n_gold": sum(n_gold.values()),
        "n_pred": sum(n_pred.values()),
        "per_label": {
            label: {**prf(tp[label], n_pred[label], n_gold[label]), "n_gold": n_gold[label]}
            for label in sorted(n_gold.keys() | n_pred.keys())
        },
    }


@METRICS.register("accuracy")
def accuracy(gold: Sequence[str], pred: Sequence[str]) -> MetricResult:
    check_lengths(gold, pred, "labels")
    correct = sum(g == p for g, p in zip(gold, pred, strict=True))
    return {"score": ratio(correct, len(gold)), "correct": correct, "n": len(gold)}
