"""`blurbkit benchmark --protocol full --plan` and `blurbkit ablate --plan`: how many runs a sweep or
study has left, their CPU-hours on this machine and its wall time on N runs at once, without
training (a calibration run of a few seconds per dataset where the store has no run of this model on it)."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blurbkit.experiments.cost import (
    Rates,
    calibrate,
    hours,
    machine_precision,
    rates_from_rows,
    simulate,
    split_sizes,
)
from blurbkit.experiments.protocol import STUDY, VARIANT, DatasetProtocol, choose, point_of
from blurbkit.experiments.run_records import run_key
from blurbkit.train.config import FinetuneConfig


def runs_at_once(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''} at once"


@dataclass
class DatasetPlan:
    dataset: str
    runs: int
    stored: int
    search: list[float] = field(default_factory=list)  # seconds of each search run left
    test: list[float] = field(default_factory=list)
    rates: Rates | None = None


@dataclass
class BatchRates:
    """A dataset's rates for a run at its batch size: the stored runs at that batch size (GAD
    trains 46 examples/s at 16, 59 at 32 on one thread), else the dataset's own."""

    rows: list[dict[str, Any]]
    base: FinetuneConfig
    threads: int
    default: Rates
    cache: dict[int | None, Rates] = field(default_factory=dict)

    def __call__(self, config: FinetuneConfig) -> Rates:
        from blurbkit.tasks.registry import get_dataset

        size = config.batch_size or get_dataset(config.dataset).recipe.batch_size
        if size not in self.cache:
            found = rates_from_rows(self.rows, self.base, self.threads, machine_precision(self.base), size)
            self.cache[size] = found or self.default
        return self.cache[size]


@dataclass
class Plan:
    datasets: list[DatasetPlan]
    threads: int
    cores: int
    grouped_by: str = "dataset"  # the first column: datasets (a sweep) or a study's table rows

    @property
    def to_run(self) -> int:
        return sum(len(d.search) + len(d.test) for d in self.datasets)

    @property
    def cpu_seconds(self) -> float:
        return self.threads * sum(sum(d.search) + sum(d.test) for d in self.datasets)

    def wall(self, slots: int) -> float:
        return simulate([(d.search, d.test) for d in self.datasets], slots)

    def text(self, workers: int, machines: Sequence[int] = (1, 4, 16)) -> str:
        lines = [f"| {self.grouped_by} | runs | stored | to run | s/run (mean) | CPU-hours | throughput from |", "|---|---|---|---|---|---|---|"]
        for d in self.datasets:
            left = d.search + d.test
            mean = f"{statistics.fmean(left):.0f}" if left else "—"
            source = f"{d.rates.source}: {d.rates.train:.1f} train ex/s" if d.rates else "—"
            lines.append(f"| {d.dataset} | {d.runs} | {d.stored} | {len(left)} | {mean} | "
                         f"{self.threads * sum(left) / 3600:.2f} | {source} |")
        per_machine = max(1, self.cores // self.threads)
        lines += ["", f"runs: {sum(d.runs for d in self.datasets)} in all, {self.to_run} to run; "
                      f"CPU-hours: {self.cpu_seconds / 3600:.2f} ({self.threads} thread(s) per run on this machine)",
                  f"wall time on {runs_at_once(workers)}: {hours(self.wall(workers))}"]
        lines += [f"wall time on {m} machine(s) like this one ({runs_at_once(m * per_machine)}): {hours(self.wall(m * per_machine))}"
                  for m in machines]
        return "\n".join(lines)


def make_plan(protocols: Sequence[DatasetProtocol], rows: list[dict[str, Any]], model_label: str, budget: str,
              threads: int, cores: int, calibrate_missing: bool = True,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Plan:
    """Seconds of every run not stored yet. Test runs of a dataset whose search is not finished are
    costed at the mean of its epoch options (the chosen point is not known yet). Without
    `calibrate_missing`, a dataset with no measured run of this model raises LookupError."""
    ok = {r["run_key"]: r for r in rows if r.get("status", "ok") == "ok" and r["study"] == STUDY and r["budget"] == budget}
    plans = []
    for p in protocols:
        plan = DatasetPlan(p.dataset, p.run_count(), 0)
        measured = [r for r in rows if r["dataset"] == p.dataset and r["model"] == model_label]
        plan.rates = rates_from_rows(measured, p.base, threads, machine_precision(p.base))
        if plan.rates is None and not calibrate_missing:
            raise LookupError(p.dataset)
        if plan.rates is None:
            log(f"blurbkit: plan: calibrating {p.dataset} (no run of this model on it in the store)")
            plan.rates = calibrate(p.base.replace(**p.grid.points()[0]), threads)
        sizes = split_sizes(p.base)
        rates_for = BatchRates(measured, p.base, threads, plan.rates)
        dev: dict[str, list[float]] = {}
        for config in p.selection_runs():
            row = ok.get(run_key(STUDY, VARIANT, config, model_label, budget).digest())
            if row:
                plan.stored += 1
                dev.setdefault(json.dumps(point_of(config), sort_keys=True), []).append(row["dev_score"])
            else:
                plan.search.append(rates_for(config).run_seconds(sizes, config.epochs))
        extra = max(0, p.test_seeds - p.grid.selection_seeds)
        best = None if plan.search else choose(p, dev)
        if best is None:
            plan.test = [plan.rates.run_seconds(sizes, statistics.fmean(p.grid.epochs))] * extra
        else:
            for config in p.test_runs(best[0])[p.grid.selection_seeds:]:
                if ok.get(run_key(STUDY, VARIANT, config, model_label, budget).digest()):
                    plan.stored += 1
                else:
                    plan.test.append(rates_for(config).run_seconds(sizes, config.epochs))
        plans.append(plan)
    return Plan(plans, threads, cores)


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study's grid as the planner sees it (`ablate --plan`)."""

    group: str  # the table row it is counted under ("ChemProt 100", "BIOSSES (search)")
    config: FinetuneConfig
    key: str | None  # its store key; None: not known before a choice on dev (a searched method's test run)
    search: bool = False  # a selection run: the group's test runs wait for every one of them
    epochs: float | None = None  # costed at this many epochs instead of the config's (a choice not made yet)


def grid_runs(study: str, grid: Sequence[tuple[str, FinetuneConfig]], label: str, budget: str) -> list[PlannedRun]:
    """A fixed grid's (variant, config) pairs as the planner sees them, one table row per dataset."""
    from blurbkit.tasks.registry import get_dataset

    return [PlannedRun(get_dataset(config.dataset).title, config, run_key(study, variant, config, label, budget).digest())
            for variant, config in grid]


def plan_runs(runs: Sequence[PlannedRun], rows: list[dict[str, Any]], model_label: str, threads: int, cores: int,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Plan:
    """Seconds of every run whose key is not stored ok, grouped as the study's table rows, from the
    throughput this model measured on each dataset (the store's rows, else a calibration run)."""
    from blurbkit.tasks.registry import get_dataset

    ok = {r["run_key"] for r in rows if r.get("status", "ok") == "ok"}
    groups: dict[str, DatasetPlan] = {}
    rates: dict[str, Rates] = {}
    sizes: dict[tuple[Any, ...], dict[str, int]] = {}
    for run in runs:
        plan = groups.setdefault(run.group, DatasetPlan(run.group, 0, 0))
        plan.runs += 1
        if run.key is not None and run.key in ok:
            plan.stored += 1
            continue
        config, dataset = run.config, run.config.dataset
        if dataset not in rates:
            measured = [r for r in rows if r["dataset"] == dataset and r["model"] == model_label]
            found = rates_from_rows(measured, config, threads, machine_precision(config))
            if found is None:
                log(f"blurbkit: plan: calibrating {dataset} (no run of this model on it in the store)")
                found = calibrate(config, threads)
            rates[dataset] = found
        plan.rates = rates[dataset]
        # The splits are read once per dataset and subsample caps (the low-resource rows differ only there).
        caps = (dataset, config.data, json.dumps(config.read_options(), sort_keys=True, default=str),
                config.max_train_examples, config.max_eval_examples, config.max_test_examples)
        if caps not in sizes:
            sizes[caps] = split_sizes(config)
        epochs = run.epochs if run.epochs is not None else config.hyper.resolved(get_dataset(dataset)).epochs
        (plan.search if run.search else plan.test).append(plan.rates.run_seconds(sizes[caps], epochs))
    return Plan(list(groups.values()), threads, cores, grouped_by="row")
