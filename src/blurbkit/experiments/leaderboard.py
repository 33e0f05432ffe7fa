"""The BLURB leaderboard of results stores: which stored runs make each row (a model under one
protocol) and each dataset cell, the cells' mean ± std over seeds, task-type averages and the
BLURB score (tasks/blurb_score.py), beside the papers' published rows.

Rows come from the studies that run the benchmark protocol: `benchmark` (the dataset's recipe;
budget 'quick', 'full' = the default recipe on all data, or explicit subsamples) and `protocol`
(the SPEC §2 grid searched on dev: a cell holds the test seeds of the point chosen on dev, as
experiments/protocol.py chooses it). Failed runs (status 'failed') stay in their cell, counted.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.experiments.benchmark import reference_results
from blurbkit.experiments.protocol import STUDY as PROTOCOL_STUDY
from blurbkit.metrics.seeds import sample_std
from blurbkit.store.results import OK, read_rows
from blurbkit.tasks.blurb_score import blurb_groups, blurb_score
from blurbkit.tasks.registry import blurb_datasets, get_dataset

BENCHMARK_STUDY = "benchmark"
LEADERBOARD_STUDIES = (BENCHMARK_STUDY, PROTOCOL_STUDY)
BUDGET_NOTE = "BUDGET RUN"  # how run notes about subsamples start (train/splits.py load_splits)


def load_stores(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of every store (read-only), each with `store` = the store file it came from. A run
    in several stores (one run key) is kept once: finished over failed, else the later store's."""
    rows: dict[str, dict[str, Any]] = {}
    for path in paths:
        if Path(path).is_dir() and (Path(path) / "results.sqlite").is_file():
            path = Path(path) / "results.sqlite"  # a runs directory: its store
        for row in read_rows(path):
            row["store"] = str(path)
            held = rows.get(row["run_key"])
            if held is None or not (held["status"] == OK and row["status"] != OK):
                rows.pop(row["run_key"], None)
                rows[row["run_key"]] = row
    return list(rows.values())


def protocol_label(study: str, budget: str) -> str:
    """'quick', 'default' (the recipe on all data), 'full grid', or the budget beside them."""
    base = "full grid" if study == PROTOCOL_STUDY else "default"
    if budget == "quick" and study == BENCHMARK_STUDY:
        return "quick"
    return base if budget == "full" else f"{base} ({budget})"


@dataclass
class Cell:
    dataset: str
    runs: list[dict[str, Any]] = field(default_factory=list)  # finished runs, one per seed (the latest)
    failed: list[dict[str, Any]] = field(default_factory=list)  # runs stored as failed, for seeds without a finished one
    superseded: int = 0  # runs of other settings than the latest run's, left out (never averaged in)

    @property
    def scores(self) -> list[float]:
        return [100 * r["test_score"] for r in self.runs]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.runs else None

    @property
    def std(self) -> float:
        return sample_std(self.scores)

    @property
    def notes(self) -> list[str]:
        return sorted({note for r in self.runs for note in json.loads(r.get("notes") or "[]")})

    def flags(self) -> dict[str, list[str]]:
        """'subsample': budget notes; 'deviation': other departures from the protocol (PICO train, truncation)."""
        out: dict[str, list[str]] = {"subsample": [], "deviation": []}
        for note in self.notes:
            out["subsample" if note.startswith(BUDGET_NOTE) else "deviation"].append(note)
        return out

    def trivial_failures(self) -> int:
        """Finished runs no better than the trivial predictor (the task type's `run_failed`)."""
        task = get_dataset(self.dataset).task
        return sum(task.run_failed(json.loads(r.get("test_metrics") or "{}")) for r in self.runs)

    @property
    def wall_seconds(self) -> float:
        return sum(r.get("wall_seconds") or 0.0 for r in self.runs)


@dataclass
class Entry:
    """One leaderboard row: a model under one protocol (study + budget)."""

    model: str
    study: str
    budget: str
    cells: dict[str, Cell]
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # full grid: dataset -> point chosen on dev

    @property
    def protocol(self) -> str:
        return protocol_label(self.study, self.budget)

    @property
    def key(self) -> str:
        return f"{self.model}|{self.study}|{self.budget}"

    def means(self) -> dict[str, float]:
        return {name: cell.mean for name, cell in self.cells.items() if cell.mean is not None}

    def group_averages(self) -> dict[str, float | None]:
        means = self.means()
        return {group: statistics.fmean(means[n] for n in names) if all(n in means for n in names) else None
                for group, names in blurb_groups().items()}

    def blurb(self) -> float | None:
        """The BLURB score when all 13 datasets have a finished run, else None."""
        means = self.means()
        if not all(spec.name in means for spec in blurb_datasets()):
            return None
        return blurb_score({spec.name: means[spec.name] for spec in blurb_datasets()})["score"]

    def failed_count(self) -> int:
        return sum(len(cell.failed) for cell in self.cells.values())


def _point(row: dict[str, Any]) -> str:
    hyper = json.loads(row["hyperparameters"])
    return json.dumps({k: hyper.get(k) for k in ("lr", "batch_size", "epochs")}, sort_keys=True)


def _grid_order(point: str) -> tuple[float, float, float]:
    values = json.loads(point)
    return float(values.get("lr") or 0), float(values.get("batch_size") or 0), float(values.get("epochs") or 0)


def _chosen_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A full-grid dataset's test runs: the point with the best mean dev score over the seeds every
    point has (the selection seeds), a point with a failed selection run ranked below every complete
    one, as experiments/protocol.py `choose` picks it."""
    by_point: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_point.setdefault(_point(row), []).append(row)
    finished = {p: {r["seed"]: r["dev_score"] for r in rs if r["status"] == OK and r["dev_score"] is not None}
                for p, rs in by_point.items()}
    failed = {p: {r["seed"] for r in rs if r["status"] != OK} for p, rs in by_point.items()}
    common = set.intersection(*(set(seeds) | failed[p] for p, seeds in finished.items())) if finished else set()
    best, best_rank = None, None
    # Ties go to the first point in grid order, as in `choose` (the grids of tasks/grids.toml list
    # every axis ascending, lr first), not to whichever point the store happens to list first.
    for point, seeds in sorted(finished.items(), key=lambda item: _grid_order(item[0])):
        scores = [seeds[s] for s in common if s in seeds] if common else list(seeds.values())
        if not scores:
            continue
        rank = (not (failed[point] & common if common else failed[point]), statistics.fmean(scores))
        if best_rank is None or rank > best_rank:
            best, best_rank = (point, rank[1]), rank
    if best is None:
        return rows, None
    return by_point[best[0]], {**json.loads(best[0]), "dev": best[1]}


def latest_setting(rows: list[dict[str, Any]], ignore: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], int]:
    """The rows of the latest run's setting (its store-key options, less `ignore`), and how many of
    other settings were left out: a cell never averages runs that were trained differently (a
    benchmark run again at another --lr under the same budget label, say)."""
    def setting(row: dict[str, Any]) -> str:
        options = json.loads(row.get("hyperparameters") or "{}")
        return json.dumps({k: v for k, v in options.items() if k not in ignore}, sort_keys=True)

    if not rows:
        return rows, 0
    # the latest by when it was stored (a re-run keeps its row, and so its place, in the store)
    last = max(range(len(rows)), key=lambda i: (str(rows[i].get("created_at") or ""), i))
    latest = setting(rows[last])
    kept = [row for row in rows if setting(row) == latest]
    return kept, len(rows) - len(kept)


def make_cell(dataset: str, rows: Iterable[dict[str, Any]], left_out: int = 0) -> Cell:
    cell = Cell(dataset)
    rows, cell.superseded = latest_setting(list(rows))
    cell.superseded += left_out
    latest: dict[int, dict[str, Any]] = {}
    failed: dict[int, dict[str, Any]] = {}
    for row in rows:  # in store order: a later run of a seed replaces an earlier one
        target = latest if row["status"] == OK else failed
        target[row["seed"]] = row
    cell.runs = [latest[s] for s in sorted(latest)]
    cell.failed = [failed[s] for s in sorted(failed) if s not in latest]
    return cell


def leaderboard(rows: Sequence[dict[str, Any]]) -> list[Entry]:
    """Entries of every (model, leaderboard study, budget) in the rows, best BLURB score first,
    then by how many datasets they cover."""
    grouped: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        if row["study"] in LEADERBOARD_STUDIES:
            key = (row["model"], row["study"], row["budget"])
            grouped.setdefault(key, {}).setdefault(row["dataset"], []).append(row)
    entries = []
    for (model, study, budget), per_dataset in grouped.items():
        entry = Entry(model, study, budget, {})
        for dataset, items in per_dataset.items():
            left_out = 0
            if study == PROTOCOL_STUDY:
                # one full-grid sweep's setting (all but the grid's own axes), then its chosen point
                items, left_out = latest_setting(items, ignore=("lr", "batch_size", "epochs"))
                items, point = _chosen_rows(items)
                if point is not None:
                    entry.chosen[dataset] = point
            entry.cells[dataset] = make_cell(dataset, items, left_out)
        entries.append(entry)
    entries.sort(key=lambda e: (-(e.blurb() or -math.inf), -len(e.means()), e.model, e.protocol))
    return entries


@dataclass(frozen=True)
class Reference:
    """A published row (SPEC §7): the papers' test scores, full data and their own grid search."""

    model: str
    scores: dict[str, float]

    def group_averages(self) -> dict[str, float]:
        return blurb_score(self.scores)["groups"]

    def blurb(self) -> float:
        return blurb_score(self.scores)["score"]


def references() -> list[Reference]:
    out = []
    for model, table in reference_results().items():
        out.append(Reference(model, {spec.name: table[spec.name] for spec in blurb_datasets()}))
    return out


def display_names(models: Iterable[str]) -> dict[str, str]:
    """A short name per store model label: the default's own, else the model directory's name, with
    as many parent folders as it takes to tell it from the others (and one where the name alone is
    generic); pages and file names are made from these, so no two labels share one."""
    labels = list(dict.fromkeys(models))

    def tail(label: str, parts: int) -> str:
        path = Path(label)
        return label if not path.is_absolute() else "/".join(path.parts[-parts:])

    depth = {label: 2 if Path(label).is_absolute() and Path(label).name in ("model", "encoder", "final") else 1
             for label in labels}
    while True:
        short = {label: tail(label, depth[label]) for label in labels}
        counts: dict[str, int] = {}
        for name in short.values():
            counts[name] = counts.get(name, 0) + 1
        clashing = [label for label in labels if counts[short[label]] > 1 and Path(label).is_absolute()
                    and depth[label] < len(Path(label).parts) - 1]
        if not clashing:
            return short
        for label in clashing:
            depth[label] += 1
