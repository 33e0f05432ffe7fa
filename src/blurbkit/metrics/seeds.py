"""How scores over seeds (or folds) are summarised: the mean and the *sample* standard deviation,
as the BLURB papers report them. One value has no spread: its std is 0, not undefined, so a
one-seed cell still prints."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sample std) of at least one value."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def sample_std(values: Iterable[float]) -> float:
    """The sample standard deviation; 0.0 for a single value."""
    return mean_std(values)[1]
