"""The BLURB score: average each task type's datasets, then the plain mean of the six averages.

Inputs are percentages, as in the papers. No intermediate rounding is needed: SPEC.md §7's
BERT-uncased / BioBERT / PubMedBERT columns give 75.988 / 80.287 / 81.103, which round to two
decimals as 75.99 / 80.29 / 81.10 (rounding the group averages first gives the same). A plain
mean over the 13 datasets would be wrong (77.13 / 81.26 / 81.90).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import blurb_datasets, dataset_named


def blurb_groups() -> dict[str, list[str]]:
    """blurb_group -> dataset names, in datasets.toml order (each task type names its `blurb_group`, tasks/types/)."""
    groups: dict[str, list[str]] = {}
    for spec in blurb_datasets():
        groups.setdefault(spec.task.blurb_group, []).append(spec.name)
    return groups


def resolve_dataset_names(scores: Mapping[str, Any]) -> dict[str, Any]:
    """Accept dataset names (``bc5chem``) or titles (``BC5-chem``), case-insensitively."""
    if not isinstance(scores, Mapping):
        raise BlurbkitError(f"scores must map dataset to percentage (e.g. {{'bc5chem': 93.33}}), not {type(scores).__name__}")
    specs = {spec.name: spec for spec in blurb_datasets()}
    resolved: dict[str, Any] = {}
    for key, value in scores.items():
        name = dataset_named(str(key), specs)
        if name is None:
            raise BlurbkitError(f"unknown BLURB dataset {key!r} (known: {', '.join(sorted(specs))})")
        if name in resolved:
            raise BlurbkitError(f"dataset {name!r} is given twice")
        resolved[name] = value
    return resolved


def blurb_score(scores: Mapping[str, float], partial: bool = False) -> dict[str, Any]:
    """``{"groups": {group: average}, "score": BLURB score, "datasets": the scores by dataset name,
    "missing": []}`` from ``{dataset: percentage}`` for all 13 (names or titles, e.g. ``bc5chem`` or
    ``BC5-chem``; percentages as in the papers, not fractions).
    With `partial` (a table filling in), datasets may be missing: only the task types with all their
    datasets get an average, ``"missing"`` names the rest, and the score is None until all 13 are there."""
    scores = resolve_dataset_names(scores)
    groups = blurb_groups()
    missing = [name for names in groups.values() for name in names if name not in scores]
    if missing and not partial:
        raise BlurbkitError(f"missing BLURB datasets: {', '.join(missing)} (all 13 are needed)")
    if not scores:
        raise BlurbkitError("no BLURB dataset scores given")
    for name, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BlurbkitError(f"score of {name!r} must be a number, got {value!r}")
        if abs(value) > 100:  # F1, accuracy and Pearson as percentages (Pearson may be negative)
            raise BlurbkitError(f"score of {name!r} is {value!r}: a percentage lies between -100 and 100")
    if all(abs(value) <= 1 for value in scores.values()):
        raise BlurbkitError(
            "every score is at most 1: give percentages, as in the papers (93.33, not 0.9333)"
        )
    averages = {group: sum(scores[n] for n in names) / len(names) for group, names in groups.items()
                if all(n in scores for n in names)}
    return {
        "groups": averages,
        "datasets": {name: float(scores[name]) for names in groups.values() for name in names if name in scores},
        "score": None if missing else sum(averages.values()) / len(averages),
        "missing": missing,
    }
