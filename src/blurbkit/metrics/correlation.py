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
    mean_g, mean_p = math.fsum(gold) / len(gold), math.fsum(pred) / len(pred)
    dg = [g - mean_g for g in gold]
    dp = [p - mean_p for p in pred]
    norm = math.sqrt(math.fsum(x * x for x in dg)) * math.sqrt(math.fsum(y * y for y in dp))
    if norm == 0.0:
        return {"score": 0.0, "undefined": True, "n": len(gold)}
    r = math.fsum(x * y for x, y in zip(dg, dp, strict=True)) / norm
    return {"score": max(-1.0, min(1.0, r)), "n": len(gold)}
