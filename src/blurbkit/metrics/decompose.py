"""Every official metric as additive per-item counts and a function of their totals.

A paired bootstrap (experiments/compare.py) resamples test items thousands of times; scoring each
resample through the metric would take minutes on the NER test sets. Each metric here splits into
counts per item (per sentence, relation instance, abstract, question or pair) whose column sums
give back the metric exactly: F1 from true positives, predicted and gold positives; accuracy from
hits; Pearson from the moments of the pairs. `items` takes the metric's own arguments;
`from_totals` maps summed counts (any leading shape, last axis = the counts) to scores, so one call
scores every resample. tests/test_compare.py checks totals over all items equal the metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from blurbkit.metrics.base import check_lengths
from blurbkit.metrics.entity import chunks
from blurbkit.metrics.hoc import merge_by_doc
from blurbkit.metrics.pico import ELEMENTS, word_element
from blurbkit.registry import Registry

Rows = list[list[float]]


@dataclass(frozen=True)
class Decomposition:
    items: Callable[..., Rows]  # the metric's arguments -> one row of counts per item
    from_totals: Callable[[np.ndarray], np.ndarray]  # (..., k) summed counts -> (...) scores (fractions)


DECOMPOSITIONS: Registry[Decomposition] = Registry("metric decomposition")


def f1_from_counts(totals: np.ndarray) -> np.ndarray:
    """F1 from (tp, n_pred, n_gold) in the last axis: 2 tp / (n_pred + n_gold), 0 where both are 0
    (the harmonic mean of P and R, as metrics.base.prf computes it)."""
    tp, n_pred, n_gold = totals[..., 0], totals[..., 1], totals[..., 2]
    denominator = n_pred + n_gold
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def _entity_items(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *, scheme: str = "iob2",
                  pred_scheme: str | None = None) -> Rows:
    check_lengths(gold, pred, "sentences")
    rows = []
    for gold_tags, pred_tags in zip(gold, pred, strict=True):
        gold_spans, pred_spans = chunks(gold_tags, scheme), chunks(pred_tags, pred_scheme or scheme)
        rows.append([len(set(gold_spans) & set(pred_spans)), len(pred_spans), len(gold_spans)])
    return rows


def _pico_items(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *,
                elements: Sequence[str] = ELEMENTS) -> Rows:
    check_lengths(gold, pred, "sentences")
    column = {element: 3 * i for i, element in enumerate(elements)}
    rows = []
    for gold_tags, pred_tags in zip(gold, pred, strict=True):
        row = [0] * (3 * len(elements))
        for gold_tag, pred_tag in zip(gold_tags, pred_tags, strict=True):
            g, p = word_element(gold_tag), word_element(pred_tag)
            if p in column:
                row[column[p] + 1] += 1
                row[column[p]] += g == p
            if g in column:
                row[column[g] + 2] += 1
        rows.append(row)
    return rows


def _pico_totals(totals: np.ndarray) -> np.ndarray:
    elements = totals.shape[-1] // 3
    return np.mean([f1_from_counts(totals[..., 3 * i:3 * i + 3]) for i in range(elements)], axis=0)


def _relation_items(gold: Sequence[str], pred: Sequence[str], *, negative_label: str | None) -> Rows:
    check_lengths(gold, pred, "labels")
    return [[int(g == p and g != negative_label), int(p != negative_label), int(g != negative_label)]
            for g, p in zip(gold, pred, strict=True)]


def _accuracy_items(gold: Sequence[str], pred: Sequence[str]) -> Rows:
    check_lengths(gold, pred, "labels")
    return [[int(g == p), 1] for g, p in zip(gold, pred, strict=True)]


def _accuracy_totals(totals: np.ndarray) -> np.ndarray:
    n = totals[..., 1]
    return np.divide(totals[..., 0], n, out=np.zeros_like(n, dtype=float), where=n > 0)


def _pearson_items(gold: Sequence[float], pred: Sequence[float]) -> Rows:
    check_lengths(gold, pred, "scores")
    gold_f, pred_f = [float(g) for g in gold], [float(p) for p in pred]
    # Centred on the full sample's means (r does not change): the moments stay small, so the
    # totals formula below loses no precision to cancellation.
    mean_g = math.fsum(gold_f) / len(gold_f) if gold_f else 0.0
    mean_p = math.fsum(pred_f) / len(pred_f) if pred_f else 0.0
    rows = []
    for g, p in zip(gold_f, pred_f, strict=True):
        dg, dp = g - mean_g, p - mean_p
        rows.append([1.0, dg, dp, dg * dg, dp * dp, dg * dp])
    return rows


def _pearson_totals(totals: np.ndarray) -> np.ndarray:
    """r from (n, Σg, Σp, Σg², Σp², Σgp); 0 where undefined (a constant side), as metrics.pearson."""
    n, sg, sp, sgg, spp, sgp = (totals[..., i] for i in range(6))
    var_g, var_p = n * sgg - sg * sg, n * spp - sp * sp
    norm = np.sqrt(np.clip(var_g, 0, None) * np.clip(var_p, 0, None))
    # A variance that is zero up to rounding (a constant side) counts as zero.
    defined = norm > 1e-12 * np.maximum(1.0, n * n)
    r = np.divide(n * sgp - sg * sp, norm, out=np.zeros_like(norm, dtype=float), where=defined)
    return np.clip(r, -1.0, 1.0)


def _hoc_items(gold: Mapping[str, Iterable[Hashable]], pred: Mapping[str, Iterable[Hashable]]) -> Rows:
    """One row per gold abstract (sentence ids merged, in order of first appearance)."""
    gold_docs, pred_docs = merge_by_doc(gold), merge_by_doc(pred)
    extra = pred_docs.keys() - gold_docs.keys()
    if extra:
        raise ValueError(f"predictions for abstracts not in the gold split: {', '.join(sorted(extra)[:3])}")
    return [[len(labels & pred_docs.get(doc, set())), len(pred_docs.get(doc, set())), len(labels)]
            for doc, labels in gold_docs.items()]


DECOMPOSITIONS.register("entity_f1")(Decomposition(_entity_items, f1_from_counts))
DECOMPOSITIONS.register("pico_macro_f1")(Decomposition(_pico_items, _pico_totals))
DECOMPOSITIONS.register("relation_micro_f1")(Decomposition(_relation_items, f1_from_counts))
DECOMPOSITIONS.register("accuracy")(Decomposition(_accuracy_items, _accuracy_totals))
DECOMPOSITIONS.register("pearson")(Decomposition(_pearson_items, _pearson_totals))
DECOMPOSITIONS.register("hoc_micro_f1")(Decomposition(_hoc_items, f1_from_counts))
