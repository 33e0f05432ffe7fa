"""HoC: multi-label micro F1 over (abstract, hallmark) cells (BLURB / LinkBERT ``eval_hoc``).

Sentence-level ids (``PMID_s3``, the BLURB tsv form) are merged to their abstract by the union of
their labels, for gold and predictions alike; abstract-level ids are used as they are. Then
true positives are the cells predicted 1 and gold 1, and P/R/F1 pool all cells of all abstracts
(LinkBERT's ``compute_p_r_f``). BLUE's older ``eval_hoc`` averages per-document P and R
instead; that is a different number and not the BLURB one.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping

from blurbkit.metrics.base import METRICS, MetricResult, prf

_SENTENCE_ID = re.compile(r"^(.+)_s\d+$")


def doc_key(item_id: str) -> str:
    """The abstract an id belongs to: ``12345_s3`` -> ``12345``; other ids are their own abstract."""
    match = _SENTENCE_ID.match(item_id)
    return match.group(1) if match else item_id


def merge_by_doc(labels: Mapping[str, Iterable[Hashable]]) -> dict[str, set[Hashable]]:
    merged: dict[str, set[Hashable]] = {}
    for item_id, item_labels in labels.items():
        merged.setdefault(doc_key(item_id), set()).update(item_labels)
    return merged


@METRICS.register("hoc_micro_f1")
def hoc_micro_f1(
    gold: Mapping[str, Iterable[Hashable]], pred: Mapping[str, Iterable[Hashable]]
) -> MetricResult:
    """Micro P/R/F1 over abstract x label cells; an abstract missing on one side has no labels there."""
    gold_docs, pred_docs = merge_by_doc(gold), merge_by_doc(pred)
    tp = sum(len(labels & pred_docs.get(doc, set())) for doc, labels in gold_docs.items())
    n_gold = sum(map(len, gold_docs.values()))
    n_pred = sum(map(len, pred_docs.values()))
    micro = prf(tp, n_pred, n_gold)
    return {
        "score": micro["f1"],
        "precision": micro["precision"],
        "recall": micro["recall"],
        "tp": tp,
        "n_gold": n_gold,
        "n_pred": n_pred,
        "n_docs": len(gold_docs.keys() | pred_docs.keys()),
    }
