"""How experiments recognise a fine-tuning run: its results-store key (everything that changes its
result, not where it is written or how fast it goes) and the result a finished run directory holds.
Every experiment (benchmark, sweeps, studies, STILT, cv) keys its runs here, so a run stored by one
is found by the others, and a run that finished but was never stored is stored from its directory."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from blurbkit.store.results import RunKey
from blurbkit.train.config import HOW_NOT_WHAT, FinetuneConfig, without_added_defaults

# Fields that change where or how fast a run goes, never what it computes (train/config.py): not part of its key,
# so a new speed setting does not orphan the runs already stored.
NOT_IN_KEY = (*HOW_NOT_WHAT, "seed", "dataset", "model")  # the last three are key fields of their own


def run_key(study: str, variant: str, config: FinetuneConfig, model_label: str, budget: str) -> RunKey:
    """The store key of one run."""
    # Options added later are left out at their defaults (train/config.py ADDED_LATER): old keys hold.
    hyper = without_added_defaults({k: v for k, v in config.to_json().items() if k not in NOT_IN_KEY})
    return RunKey(study, variant, model_label, config.dataset, config.seed, budget, json.dumps(hyper, sort_keys=True))


def finished_run(out: Path | None) -> dict[str, Any] | None:
    """The metrics of a run directory a run finished in (written whole by run_finetune), or None.
    A run whose result could not be stored (store locked too long) is stored from here next time."""
    if out is None or not (out / "metrics.json").is_file():
        return None
    try:
        metrics = json.loads((out / "metrics.json").read_text("utf-8"))
        info = json.loads((out / "run.json").read_text("utf-8")) if (out / "run.json").is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(metrics, dict) or not all(isinstance(metrics.get(k), dict) for k in ("test", "dev")) or "metric" not in metrics:
        return None
    metrics["_blurbkit_commit"] = info.get("blurbkit_commit") if isinstance(info, dict) else None
    return metrics


def mixed_precision_note(rows: Iterable[dict[str, Any]]) -> str | None:
    """A cell whose runs computed in different precisions (merged from a bf16 and an fp32-only machine,
    `blurbkit store merge`) says so: the same seed moves in its last digits, or more, between them."""
    counts = precision_counts(rows)
    return f"MIXED PRECISION: {counts}" if counts else None


def precision_counts(rows: Iterable[dict[str, Any]]) -> str | None:
    """'3 run(s) bfloat16, 2 run(s) fp32' when `rows` computed in more than one precision, else None."""
    counts = Counter(r["precision"] for r in rows if r.get("precision"))  # older rows did not record it
    if len(counts) < 2:
        return None
    return ", ".join(f"{n} run(s) {name}" for name, n in sorted(counts.items()))
