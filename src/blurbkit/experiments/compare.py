"""Is a difference between two leaderboard rows real? Per dataset: the score difference with a
paired-bootstrap 95% interval over test examples, a seed-level test where both rows have several
seeds, and the BLURB-score difference with its interval.

The bootstrap resamples the test set's units (what the task type's `bootstrap_units` says: a
relation instance, a question, a pair; an abstract for HoC and for sentences of one abstract in
NER / PICO) with replacement; each replicate scores both models on the same resample (paired),
every seed of a row on it, and takes the difference of the seed means. The metric is recomputed
from additive per-unit counts (metrics/decompose.py), so 2,000 replicates take a moment. The BLURB
score is linear in the dataset scores, so its replicates combine the datasets' replicates (the
test sets are independent). Gold test records come from the data each run names (or `data`), and
must hash to the records the run scored (run.json `data_sha256`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.leaderboard import Cell, Entry
from blurbkit.scoring import prediction_file_name, read_prediction_file, unit_statistics
from blurbkit.tasks.blurb_score import blurb_groups
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.provenance import records_sha256
from blurbkit.train.splits import test_records

REPLICATES = 2000
CHUNK = 200  # replicates per matrix product (memory: CHUNK x units weights)


def resolve_run_dir(row: dict[str, Any]) -> Path | None:
    """Where a stored run's directory is now: as stored (absolute, or relative to the working
    directory), else beside the store it came from (a store and its runs moved together:
    runs_dir/STUDY/VARIANT/DATASET/seedN-DIGEST)."""
    stored = row.get("run_dir")
    if not stored:
        return None
    path = Path(stored)
    store = Path(row.get("store") or ".").resolve()
    candidates = [path, store.parent / path, store.parent.parent / path, store.parent.joinpath(*path.parts[-4:])]
    return next((c for c in candidates if (c / "run.json").is_file()), None)


def run_info(run_dir: Path | None) -> dict[str, Any]:
    """run.json of a run directory ({} when absent or unreadable)."""
    if run_dir is None:
        return {}
    try:
        info = json.loads((run_dir / "run.json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def run_config(info: dict[str, Any], data: str | Path | None) -> FinetuneConfig:
    options = {k: v for k, v in info.get("config", {}).items() if k in set(FinetuneConfig.option_names())}
    if data is not None:
        options["data"] = str(data)
    options["out"] = None
    return FinetuneConfig(**options)


@dataclass
class UnitStats:
    units: list[str]  # unit keys, one per unique unit, in first-seen order
    counts: np.ndarray  # (units, k) summed per unit
    sha256: str  # of the gold test records


class GoldCache:
    """Gold test records per (dataset, data, subsample, options), read once per report."""

    def __init__(self, data: str | Path | None = None) -> None:
        self.data = data
        self._gold: dict[str, tuple[list[dict], str]] = {}

    def gold(self, config: FinetuneConfig) -> tuple[list[dict], str]:
        key = json.dumps([config.dataset, config.data, config.max_test_examples, config.pico_train_from_dev, config.fold])
        if key not in self._gold:
            records = test_records(config)
            self._gold[key] = (records, records_sha256(records))
        return self._gold[key]

    def statistics(self, row: dict[str, Any]) -> UnitStats:
        """One stored run's test predictions as per-unit counts; BlurbkitError says why not."""
        what = f"{row['dataset']} seed {row['seed']}"
        run_dir = resolve_run_dir(row)
        if run_dir is None:
            raise BlurbkitError(f"{what}: the run directory is not here ({row.get('run_dir') or 'none stored'})")
        info = run_info(run_dir)
        spec = get_dataset(row["dataset"])
        path = run_dir / "predictions" / prediction_file_name(spec, "test")
        if not path.is_file():
            raise BlurbkitError(f"{what}: no test predictions in the run directory", path=path)
        config = run_config(info, self.data)
        gold, sha = self.gold(config)
        expected = info.get("data_sha256", {}).get("test")
        if expected and expected != sha:
            raise BlurbkitError(f"{what}: the test records read now differ from those the run scored "
                                f"(sha256 {sha[:12]} vs {expected[:12]}); give the run's data with --data")
        # Run directories hold predictions in the dataset's own tags whatever scheme the model learnt
        # (train/run.py write_predictions): read and score them as such.
        predictions = read_prediction_file(spec, gold, path)
        units, rows = unit_statistics(spec, gold, predictions)
        order = list(dict.fromkeys(units))
        index = {u: i for i, u in enumerate(order)}
        matrix = np.asarray(rows, dtype=float).reshape(len(rows), -1)
        counts = np.zeros((len(order), matrix.shape[1]))
        np.add.at(counts, [index[u] for u in units], matrix)
        return UnitStats(order, counts, sha)


def bootstrap_differences(score: Any, a: Sequence[np.ndarray], b: Sequence[np.ndarray], replicates: int = REPLICATES,
                          seed: int = 0) -> tuple[float, np.ndarray]:
    """(observed difference, replicate differences) of mean-over-seeds scores, in %: `a`, `b` are
    each seed's (units, k) counts on the same units; `score` maps summed counts to fractions.
    Every replicate draws the units with replacement once and scores both sides on that draw."""
    units = a[0].shape[0]
    if any(x.shape[0] != units for x in (*a, *b)):
        raise ValueError("the two sides are not on the same test units")

    def side(counts: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        return np.mean([score(weights @ c) for c in counts], axis=0)

    ones = np.ones((1, units))
    observed = float(100 * (side(a, ones) - side(b, ones))[0])
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, replicates, CHUNK):
        weights = rng.multinomial(units, np.full(units, 1.0 / units), size=min(CHUNK, replicates - start)).astype(float)
        out.append(100 * (side(a, weights) - side(b, weights)))
    return observed, np.concatenate(out)


def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def seed_tests(a: Sequence[float], b: Sequence[float]) -> dict[str, float | None]:
    """Welch's t-test and the Mann-Whitney U test of two rows' seed scores (both need 2+ seeds)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return {"welch_p": None, "mannwhitney_p": None}
    with warnings.catch_warnings():  # nearly identical seed scores: scipy warns and t is undefined (None below)
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = stats.ttest_ind(a, b, equal_var=False).pvalue
        mann = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    return {"welch_p": None if math.isnan(welch) else float(welch), "mannwhitney_p": float(mann)}


@dataclass
class DatasetComparison:
    dataset: str
    mean_a: float | None = None
    mean_b: float | None = None
    seeds_a: list[float] = field(default_factory=list)
    seeds_b: list[float] = field(default_factory=list)
    difference: float | None = None  # A - B, points, mean over seeds on the full test set
    low: float | None = None
    high: float | None = None
    units: int = 0
    replicates: np.ndarray | None = None
    tests: dict[str, float | None] = field(default_factory=dict)
    problem: str | None = None  # why there is no interval


@dataclass
class Comparison:
    a: Entry
    b: Entry
    datasets: list[DatasetComparison]
    blurb: tuple[float, float, float] | None  # difference, low, high
    blurb_problem: str | None


def compare_cells(name: str, cell_a: Cell | None, cell_b: Cell | None, cache: GoldCache, replicates: int,
             seed: int) -> DatasetComparison:
    out = DatasetComparison(name)
    if cell_a is not None and cell_a.runs:
        out.mean_a, out.seeds_a = cell_a.mean, cell_a.scores
    if cell_b is not None and cell_b.runs:
        out.mean_b, out.seeds_b = cell_b.mean, cell_b.scores
    if out.mean_a is None or out.mean_b is None:
        out.problem = f"no finished run of {'A' if out.mean_a is None else 'B'}"
        return out
    out.tests = seed_tests(out.seeds_a, out.seeds_b)
    try:
        stats_a = [cache.statistics(r) for r in cell_a.runs]
        stats_b = [cache.statistics(r) for r in cell_b.runs]
    except BlurbkitError as err:
        out.problem = str(err)
        return out
    if len({s.sha256 for s in stats_a + stats_b}) > 1 or len({tuple(s.units) for s in stats_a + stats_b}) > 1:
        out.problem = "the two rows were scored on different test examples (other subsamples): no paired interval"
        return out
    spec = get_dataset(name)
    out.difference, out.replicates = bootstrap_differences(spec.task.score_from_totals, [s.counts for s in stats_a],
                                                           [s.counts for s in stats_b], replicates, seed)
    out.low, out.high = interval(out.replicates)
    out.units = len(stats_a[0].units)
    return out


def compare(a: Entry, b: Entry, data: str | Path | None = None, replicates: int = REPLICATES, seed: int = 0,
            cache: GoldCache | None = None) -> Comparison:
    """Both rows on every dataset either has, and the BLURB difference when all 13 have intervals."""
    cache = cache or GoldCache(data)
    names = [n for names in blurb_groups().values() for n in names if n in a.cells or n in b.cells]
    datasets = [compare_cells(n, a.cells.get(n), b.cells.get(n), cache, replicates, seed + i) for i, n in enumerate(names)]
    by_name = {d.dataset: d for d in datasets}
    groups = blurb_groups()
    missing = [n for names in groups.values() for n in names if by_name.get(n) is None or by_name[n].replicates is None]
    if missing:
        return Comparison(a, b, datasets, None, f"needs a paired interval on all 13 datasets; missing: {', '.join(missing)}")
    # BLURB = mean over groups of the group's mean: linear, so differences combine the same way.
    def blurb_of(values: dict[str, Any]) -> Any:
        return sum(sum(values[n] for n in names) / len(names) for names in groups.values()) / len(groups)

    observed = blurb_of({n: by_name[n].difference for n in by_name})
    reps = blurb_of({n: by_name[n].replicates for n in by_name})
    low, high = interval(reps)
    return Comparison(a, b, datasets, (observed, low, high), None)


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def comparison_rows(result: Comparison) -> list[list[str]]:
    """The table as strings: dataset, A, B, A - B, 95% interval, units, Welch p, Mann-Whitney p, note."""
    rows = []
    for d in result.datasets:
        a = "—" if d.mean_a is None else f"{d.mean_a:.2f} (n={len(d.seeds_a)})"
        b = "—" if d.mean_b is None else f"{d.mean_b:.2f} (n={len(d.seeds_b)})"
        diff = "—" if d.mean_a is None or d.mean_b is None else f"{(d.difference if d.difference is not None else d.mean_a - d.mean_b):+.2f}"
        ci = "—" if d.low is None else f"[{d.low:+.2f}, {d.high:+.2f}]"
        note = d.problem or ("interval excludes 0" if d.low is not None and (d.low > 0 or d.high < 0) else "")
        rows.append([get_dataset(d.dataset).title, a, b, diff, ci, str(d.units or "—"),
                     _p(d.tests.get("welch_p")), _p(d.tests.get("mannwhitney_p")), note])
    if result.blurb is not None:
        diff, low, high = result.blurb
        rows.append(["BLURB score", f"{result.a.blurb():.2f}", f"{result.b.blurb():.2f}", f"{diff:+.2f}",
                     f"[{low:+.2f}, {high:+.2f}]", "", "", "", ""])
    else:
        rows.append(["BLURB score", "", "", "—", "—", "", "", "", result.blurb_problem or ""])
    return rows


HEADER = ["dataset", "A", "B", "A − B", "95% interval (paired bootstrap)", "units", "Welch p", "Mann-Whitney p", "note"]


def comparison_table(result: Comparison, names: dict[str, str] | None = None, replicates: int = REPLICATES) -> str:
    names = names or {}
    lines = [f"A = {names.get(result.a.model, result.a.model)} ({result.a.protocol}); "
             f"B = {names.get(result.b.model, result.b.model)} ({result.b.protocol})", "",
             "| " + " | ".join(HEADER) + " |", "|---" * len(HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(result)]
    lines += ["", "Scores: test, %, mean over seeds. Interval: 2.5th-97.5th percentile of the difference over "
              f"{replicates} paired bootstrap resamples of the test units (abstracts where the metric is per "
              "document). p: seed-level tests where both rows have 2+ seeds."]
    return "\n".join(lines)
