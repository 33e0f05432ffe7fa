"""The search study (`blurbkit ablate --study search`, the stability paper's Table 9 shape): per
dataset blurbkit's default recipe against the dev-selected hyperparameter grid, without and with
stabilisation, every method over the same test seeds.

A searched variant (`ablation.Variant.searched`) runs in two stages, both through `Benchmark` (in
this process, or on an executor) and the results store; a search's second stage starts as soon as
its own first stage is stored, ahead of the other datasets' grids:
  1. selection: the protocol's grid (experiments/protocol.py: tasks/grids.toml, or --grid) x its
     selection seeds, stored under the variant `NAME/select`, so no table mixes them with test runs;
  2. test: the study's test seeds on the point with the best mean dev score (`protocol.choose`),
     with the variant's test-only overrides, stored under `NAME`.
Selection seeds start at FIRST_SELECTION_SEED: a study that compares methods keeps its test runs
apart from the runs their point was chosen on (their dev luck would favour the searched columns),
and they are the seeds of the `standard` column. (`benchmark --protocol full`, which scores one
encoder, reuses its selection runs as its first test seeds to save runs, and says so under its table.) Run again, the study trains nothing stored: the choice is made again
from the same stored dev scores, and the test runs on that point are in the store.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.experiments.ablation import Variant
from blurbkit.experiments.benchmark import Benchmark
from blurbkit.experiments.plan import PlannedRun
from blurbkit.experiments.protocol import DatasetProtocol, choose, grid_for, point_of
from blurbkit.experiments.run_records import run_key
from blurbkit.experiments.stability import Cell, StabilityStudy, check_no_conflict, row_label, seeds_for
from blurbkit.fileio import write_csv
from blurbkit.metrics.seeds import sample_std
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig

SELECT = "/select"  # the store variant of a searched method's selection runs: NAME/select
FIRST_SELECTION_SEED = 100  # selection seeds 100, 101, ...; test seeds 0, 1, ... (as every other column)


def selection_variant(name: str) -> str:
    return f"{name}{SELECT}"


def is_selection_variant(name: str) -> bool:
    return name.endswith(SELECT)


def point_text(point: dict[str, Any]) -> str:
    return f"lr {point['lr']:g}, batch {point['batch_size']}, epochs {point['epochs']}"


@dataclass(frozen=True)
class Search:
    """One dataset's search for one searched method: its grid, selection runs and test seeds."""

    row: str
    variant: Variant
    protocol: DatasetProtocol  # its base carries the variant's overrides (every grid run gets them)

    def selection(self) -> list[Cell]:
        name = selection_variant(self.variant.name)
        return [Cell(self.row, name, config.replace(seed=config.seed + FIRST_SELECTION_SEED))
                for config in self.protocol.selection_runs()]

    def tests(self, point: dict[str, Any]) -> list[Cell]:
        return [Cell(self.row, self.variant.name, config.replace(**self.variant.test_overrides))
                for config in self.protocol.test_runs(point)]

    def run_count(self) -> int:
        grid = self.protocol.grid
        return len(grid.points()) * grid.selection_seeds + self.protocol.test_seeds


def plan_searches(study: StabilityStudy, datasets: Sequence[str], variants: Sequence[Variant], seeds: int | None,
                  make_config: Callable[[str, int], FinetuneConfig], grid_overrides: dict[str, Any] | None = None,
                  protocol: str = "full") -> list[Search]:
    """Every dataset x searched variant; `protocol` names the grids.toml table ('quick' for --quick);
    `seeds` None: each dataset's protocol test seeds (`seeds_for`)."""
    searches = []
    for dataset in datasets:
        base = make_config(dataset, 0)
        check_no_conflict(study, base)
        spec = get_dataset(dataset)
        grid = grid_for(spec.name, grid_overrides, protocol)
        for variant in variants:
            if variant.searched:
                searches.append(Search(row_label(spec.name, None), variant,
                                       DatasetProtocol(spec.name, grid, seeds_for(dataset, seeds),
                                                       base.replace(**variant.overrides))))
    return searches


def planned_runs(study: str, cells: Sequence[Cell], searches: Sequence[Search], rows: Sequence[dict[str, Any]],
                 label: str, budget: str) -> list[PlannedRun]:
    """What `ablate --plan` costs: the fixed methods' runs, each search's selection runs, and its test
    runs on the chosen point (or, before every selection run is stored, on a point not chosen yet:
    costed at the mean of the grid's epoch options)."""
    def key_of(cell: Cell) -> str:
        return run_key(study, cell.variant, cell.config, label, budget).digest()

    runs = [PlannedRun(cell.row, cell.config, key_of(cell)) for cell in cells]
    by_key = {row["run_key"]: dict(row) for row in rows}
    for search in searches:
        group = f"{search.row} ({search.variant.name})"
        runs += [PlannedRun(group, cell.config, key_of(cell), search=True) for cell in search.selection()]
        choice = choose_point(search, by_key, key_of)
        if choice.best is not None:
            runs += [PlannedRun(group, cell.config, key_of(cell)) for cell in search.tests(choice.best[0])]
        else:
            grid = search.protocol.grid
            runs += [PlannedRun(group, cell.config, None, epochs=statistics.fmean(grid.epochs))
                     for cell in search.tests(grid.points()[0])]
    return runs


@dataclass
class Choice:
    """What the selection runs of one search gave: dev scores per point and the winner."""

    search: Search
    dev: dict[str, list[float]]  # point JSON -> dev scores of its finished selection runs
    errored: dict[str, int]  # point JSON -> selection runs stored as failed (no score)
    missing: int  # selection runs not in the store (stopped, or held by another process)
    best: tuple[dict[str, Any], float] | None  # (point, mean dev) once every selection run is stored

    def why_none(self) -> str:
        total = len(self.search.selection())
        if self.missing:
            return f"{self.missing} of {total} selection runs not stored yet; no test runs until they are"
        return f"all {total} selection runs errored; no test runs"


def choose_point(search: Search, rows_by_key: dict[str, dict[str, Any]], key_of: Callable[[Cell], str],
                 pending: Collection[str] = ()) -> Choice:
    """The best mean dev point, chosen only when every selection run is stored (ok or errored) and
    none is about to run again (`pending`: a stored row the running grid replaces, as with --force
    or a failed run tried again): a choice from part of the grid would depend on which runs
    happened to finish first."""
    dev: dict[str, list[float]] = {}
    errored: dict[str, int] = {}
    missing = 0
    for cell in search.selection():
        key = key_of(cell)
        row = None if key in pending else rows_by_key.get(key)
        point = json.dumps(point_of(cell.config), sort_keys=True)
        if row is None:
            missing += 1
        elif row.get("status", "ok") != "ok":
            errored[point] = errored.get(point, 0) + 1
        else:
            dev.setdefault(point, []).append(row["dev_score"])
    best = None if missing else choose(search.protocol, dev, errored)
    return Choice(search, dev, errored, missing, best)


@dataclass
class SearchRun:
    cells: list[Cell]  # the table's runs: the fixed methods' and the test runs on the chosen points
    choices: list[Choice]
    rows: list[dict[str, Any]]  # the stored rows of `cells`
    failures: list[str] = field(default_factory=list)


def run_search_study(fixed: Sequence[Cell], searches: Sequence[Search], make_bench: Callable[[], Benchmark],
                     label: str, budget: str, say: Callable[[str], None]) -> SearchRun:
    """The fixed methods' runs and every selection run; each search's test seeds start as soon as
    all of its selection runs are stored (ahead of the rest of the grid), so a dataset's table is
    complete before the next dataset's grid ends. Selection runs another process holds are looked
    for in the store once more when the grid ends (their tests run then if they are stored, else
    with the next invocation). `make_bench` gives the runner (an executor is closed when its grid
    ends, so that last pass gets a new one)."""
    bench = make_bench()
    benches = [bench]
    # Dataset by dataset (fixed methods, then selection runs), so the first dataset's tests come first.
    row_order = dict.fromkeys([*(c.row for c in fixed), *(s.row for s in searches)])
    first = [cell for row in row_order for cell in [*(c for c in fixed if c.row == row),
                                               *(c for s in searches if s.row == row for c in s.selection())]]

    def key_of(cell: Cell) -> str:
        return run_key(bench.study, cell.variant, cell.config, label, budget).digest()

    choices: dict[int, Choice] = {}  # search index -> its choice, once every selection run is stored

    def chosen_tests(final: bool, pending: Collection[str] = ()) -> list[Cell]:
        waiting = [i for i in range(len(searches)) if i not in choices]
        if not waiting:
            return []
        selection = [cell for i in waiting for cell in searches[i].selection()]
        stored = {r["run_key"]: r for r in bench.rows_for([(c.variant, c.config) for c in selection], label, budget)}
        tests = []
        for i in waiting:
            search = searches[i]
            choice = choose_point(search, stored, key_of, pending)
            name = f"{search.row} [{search.variant.name}]"
            if choice.missing and not final:
                continue
            choices[i] = choice
            if choice.best is None:
                say(f"blurbkit: {name}: {choice.why_none()}")
                continue
            point, dev = choice.best
            say(f"blurbkit: {name}: chose {point_text(point)} (mean dev {100 * dev:.2f}); "
                f"{search.protocol.test_seeds} test seeds on it")
            tests += search.tests(point)
        return tests

    bench.run([(c.variant, c.config) for c in first], label, budget,
              follow_up=lambda pending: [(c.variant, c.config) for c in chosen_tests(False, pending)])
    late = chosen_tests(final=True)  # searches whose selection runs another process held (now stored, or not)
    if late:
        if bench.executor is not None:
            bench = make_bench()
            benches.append(bench)
        bench.run([(c.variant, c.config) for c in late], label, budget)
    ordered = [choices[i] for i in range(len(searches))]
    tests = [cell for choice in ordered if choice.best is not None for cell in choice.search.tests(choice.best[0])]
    cells = [*fixed, *tests]
    rows = bench.rows_for([(c.variant, c.config) for c in cells], label, budget)
    failures = [failure for b in benches for failure in b.failures]
    return SearchRun(cells, ordered, rows, failures)


# -- the table's search sections ----------------------------------------------------------------

def _seed_range(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def grid_budget_lines(searches: Sequence[Search]) -> list[str]:
    """One budget line per dataset: its grid, selection and test seeds, and the runs of each search."""
    lines, by_row = [], {}
    for search in searches:
        by_row.setdefault(search.row, []).append(search)
    for row, items in by_row.items():
        p = items[0].protocol
        g = p.grid
        lines.append(f"- {row} grid ({', '.join(s.variant.name for s in items)}): lr {'/'.join(f'{v:g}' for v in g.lr)} x "
                     f"batch {'/'.join(map(str, g.batch_size))} x epochs {'/'.join(map(str, g.epochs))} = "
                     f"{len(g.points())} point{'s' * (len(g.points()) != 1)} x {g.selection_seeds} selection seed{'s' * (g.selection_seeds != 1)} "
                     f"({_seed_range(FIRST_SELECTION_SEED, g.selection_seeds)}) on dev, then {p.test_seeds} test seeds "
                     f"({_seed_range(0, p.test_seeds)}) on the chosen point: {items[0].run_count()} runs per method")
    return lines


def _dev_cell(choice: Choice, point: dict[str, Any]) -> str:
    key = json.dumps(point, sort_keys=True)
    scores = [100 * s for s in choice.dev.get(key, [])]
    text = "—" if not scores else f"{statistics.fmean(scores):.2f}" + (
        f" ± {sample_std(scores):.2f}" if len(scores) > 1 else "")
    if choice.errored.get(key):
        text += f" ({choice.errored[key]} errored)"
    if choice.best is not None and choice.best[0] == point:
        text = f"**{text}** ←"
    return text


def search_section(choices: Sequence[Choice]) -> str:
    """The chosen point per dataset and method, then every grid point's dev mean per method."""
    methods = list(dict.fromkeys(c.search.variant.name for c in choices))
    lines = ["Chosen points (best mean dev score over the selection seeds; the test seeds ran on them):", "",
             "| dataset | method | lr | batch | epochs | mean dev (%) |", "|---|---|---|---|---|---|"]
    for choice in choices:
        name = f"| {choice.search.row} | {choice.search.variant.name} |"
        if choice.best is None:
            lines.append(f"{name} — | — | — | {choice.why_none()} |")
            continue
        point, dev = choice.best
        lines.append(f"{name} {point['lr']:g} | {point['batch_size']} | {point['epochs']} | {100 * dev:.2f} |")
    lines += ["", "Grid dev scores (%, mean ± std over the selection seeds; ← the chosen point):", "",
              f"| dataset | lr | batch | epochs | {' | '.join(methods)} |", "|---" * (4 + len(methods)) + "|"]
    rows = list(dict.fromkeys(c.search.row for c in choices))
    for row in rows:
        of_row = {c.search.variant.name: c for c in choices if c.search.row == row}
        first = next(iter(of_row.values()))
        for point in first.search.protocol.grid.points():
            cells = [_dev_cell(of_row[m], point) if m in of_row else "" for m in methods]
            lines.append(f"| {row} | {point['lr']:g} | {point['batch_size']} | {point['epochs']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_grid_csv(path: Path, study: str, choices: Sequence[Choice]) -> Path:
    """One line per dataset x method x grid point: its dev scores, their mean and std, whether chosen."""
    rows: list[list[Any]] = [["study", "row", "method", "lr", "batch_size", "epochs", "dev_scores", "dev_mean", "dev_std",
                     "errored", "chosen"]]
    for choice in choices:
        for point in choice.search.protocol.grid.points():
            key = json.dumps(point, sort_keys=True)
            scores = [100 * s for s in choice.dev.get(key, [])]
            mean = f"{statistics.fmean(scores):.4f}" if scores else ""
            std = f"{sample_std(scores):.4f}" if len(scores) > 1 else ""
            chosen = int(choice.best is not None and choice.best[0] == point)
            rows.append([study, choice.search.row, choice.search.variant.name, f"{point['lr']:g}", point["batch_size"],
                             point["epochs"], " ".join(f"{s:.4f}" for s in scores), mean, std,
                             choice.errored.get(key, 0), chosen])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, rows)
    return path
