"""Pearson correlation (BIOSSES)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from blurbkit.metrics.base import METRICS, MetricResult, check_lengths


@METRICS.register("pearson")
def pearson(gold: Sequence[float], pred: Sequence[float]) -> MetricResult:
    """Pearson's r (as scipy.stats.pearsonr). Needs at least two pairs.

    A constant prediction (or constant gold) leaves r undefined; it is scored 0.0 with
    ``"undefined": true`` rather than NaN, so a collapsed fine-tuning run still averages and
    serialises as JSON.
    """
    check_lengths(gold, pred, "scores")
    if len(gold) < 2:
        raise ValueError(f"Pearson correlation needs at least 2 pairs, got {len(gold)}")
    gold, pred = _in_range(gold), _in_range(pred)
    mean_g, mean_p = math.fsum(gold) / len(gold), math.fsum(pred) / len(pred)
    dg = [g - mean_g for g in gold]
    dp = [p - mean_p for p in pred]
    norm = math.sqrt(math.fsum(x * x for x in dg)) * math.sqrt(math.fsum(y * y for y in dp))
    if norm == 0.0:
        return {"score": 0.0, "undefined": True, "n": len(gold)}
    r = math.fsum(x * y for x, y in zip(dg, dp, strict=True)) / norm
    return {"score": max(-1.0, min(1.0, r)), "n": len(gold)}


def _in_range(values: Sequence[float]) -> Sequence[float]:
    """Values whose squares would overflow or underflow (a diverged regression head's 1e160s),
    divided by their largest magnitude: r does not change with scale, and ordinary scores (BIOSSES's
    0-4) are left exactly as they are, so their digits stay the official ones."""
    largest = max(abs(v) for v in values)
    if largest > 1e100 or 0 < largest < 1e-100:
        return [v / largest for v in values]
    return values
