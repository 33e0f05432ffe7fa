"""The metric registry and the precision/recall/F1 arithmetic every metric shares.

Metric functions are pure: they take Python lists (or dicts) of gold and predicted values and
return a ``MetricResult`` dict whose ``"score"`` is the official number as a fraction
(0-1; Pearson -1..1). They are registered under the metric names of tasks/task_types.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blurbkit.registry import Registry

MetricResult = dict[str, Any]
METRICS: Registry[Callable[..., MetricResult]] = Registry("metric")


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0.0 when the denominator is 0 (conlleval, seqeval and sklearn agree)."""
    return numerator / denominator if denominator else 0.0


def harmonic(precision: float, recall: float) -> float:
    """F1 as the harmonic mean of P and R; 0.0 when both are 0."""
    return ratio(2 * precision * recall, precision + recall)


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    """Precision, recall and F1 from counts (true positives, predicted positives, gold positives)."""
    precision, recall = ratio(tp, n_pred), ratio(tp, n_gold)
    return {"precision": precision, "recall": recall, "f1": harmonic(precision, recall)}


def check_lengths(gold: Any, pred: Any, what: str = "items") -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold {what} but {len(pred)} predicted")
