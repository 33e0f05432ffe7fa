"""The benchmark, the modeling-choice ablations and the stability, pretraining, STILT and
cross-validation studies run end to end: their grids through ``Benchmark`` (this process, the local
pool or Ray), the table, the md/csv/png report. The CLI builds the configs and prints; nothing here
reads command-line arguments."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.experiments.benchmark import Benchmark
from blurbkit.experiments.run_records import run_key
from blurbkit.experiments.stability import Cell, collect


@dataclass
class StudyOutcome:
    table: str  # the study's table (markdown), as printed
    failures: list[str]  # runs that failed, one line each
    seconds: float  # wall time of the work done now
    write: Callable[[], list[Path]]  # writes the report files (md/csv/png), returns them: called after the
    # table is shown, so a full disk at the end of a long study still leaves the table on screen


@dataclass
class BenchmarkOutcome(StudyOutcome):
    notes: list[str]  # the datasets' notes (budget subsamples, local deviations), "Title: note" each
    stored_seconds: float  # wall time summed over the runs in the table (stored earlier ones included)
    runs: int  # runs in the table


def run_benchmark(configs: Sequence[Any], bench: Benchmark, datasets: Sequence[str], label: str, budget: str,
                  runs_dir: Path) -> BenchmarkOutcome:
    """The default-protocol benchmark: every (dataset, seed) run through `bench`, the BLURB table
    (task-type averages, BLURB score, crashed runs counted), md/csv/png as benchmark-BUDGET."""
    from blurbkit.experiments.benchmark import blurb_table, failed_runs, summarise
    from blurbkit.experiments.report import write_report
    from blurbkit.tasks.registry import get_dataset

    started = time.perf_counter()
    bench.run(configs, label, budget)
    rows = bench.rows_for(configs, label, budget)
    per_dataset = summarise(rows).get("standard", {})
    failed = failed_runs(rows).get("standard")
    table = blurb_table(per_dataset, "this run", budget, failed)
    notes = [f"{get_dataset(name).title}: {note}" for name in datasets for note in per_dataset.get(name, {}).get("notes", [])]
    return BenchmarkOutcome(table, list(bench.failures), time.perf_counter() - started,
                            lambda: write_report(runs_dir, f"benchmark-{budget}", table, per_dataset, failed),
                            notes, sum(cell["wall_seconds"] for cell in per_dataset.values()), len(rows))


def run_ablation_study(study: Any, grid: Sequence[Any], skipped: dict[tuple[str, str], str], bench: Benchmark,
                       datasets: Sequence[str], variants: Sequence[str], label: str, budget: str,
                       runs_dir: Path) -> StudyOutcome:
    """A modeling-choice ablation (experiments/ablation.py): its grid through `bench`, the table of
    variant means per dataset (what was not run and why, crashed runs counted), md/csv/png."""
    from blurbkit.experiments.ablation import ablation_table, flat_cells
    from blurbkit.experiments.benchmark import failed_runs, summarise
    from blurbkit.experiments.report import write_report

    started = time.perf_counter()
    bench.run(grid, label, budget)
    rows = bench.rows_for(grid, label, budget)
    summary = summarise(rows)
    table = ablation_table(study, summary, datasets, variants, skipped, budget, failed_runs(rows))
    return StudyOutcome(table, list(bench.failures), time.perf_counter() - started,
                        lambda: write_report(runs_dir, f"ablation-{study.name}-{budget}", table, flat_cells(summary)))


def run_stability_study(study: Any, variants: Sequence[Any], cells: Sequence[Cell], searches: Sequence[Any],
                        make_bench: Callable[[], Benchmark], label: str, budget: str, runs_dir: Path,
                        model: str | None, say: Callable[[str], None]) -> StudyOutcome:
    """A fine-tuning stability study (experiments/stability.py): the fixed methods' cells, and the
    searched methods in two stages (experiments/search_study.py); the table with failed-run counts."""
    from blurbkit.experiments.search_study import (
        grid_budget_lines,
        run_search_study,
        search_section,
        write_grid_csv,
    )
    from blurbkit.experiments.stability import encoder_parameters, stability_table, write_stability_report

    started = time.perf_counter()
    if searches:
        done = run_search_study(cells, searches, make_bench, label, budget, say)
        table_cells, stored, failures = done.cells, done.rows, done.failures
    else:
        bench = make_bench()
        grid = [(cell.variant, cell.config) for cell in cells]
        bench.run(grid, label, budget)
        table_cells, stored, failures = list(cells), bench.rows_for(grid, label, budget), bench.failures
    results = collect(table_cells, stored, lambda cell: run_key(study.name, cell.variant, cell.config, label, budget).digest())
    parameters = None
    if study.cost_columns:
        parameters = {k: encoder_parameters(model, k) for k in sorted({cell.config.drop_layers for cell in cells})}
    name = f"study-{study.name}-{budget}"
    table = stability_table(study, table_cells, results, variants, budget, parameters, budget_cells=list(cells) or None,
                            budget_extra=grid_budget_lines(searches))
    if searches:
        table += f"\n\n{search_section(done.choices)}\n\nEvery grid point's dev scores: {name}-grid.csv"
    seconds = time.perf_counter() - started

    def write() -> list[Path]:
        written = write_stability_report(runs_dir, name, table, study, results, variants)
        if searches:
            written.append(write_grid_csv(runs_dir / f"{name}-grid.csv", study.name, done.choices))
        return written

    return StudyOutcome(table, list(failures), seconds, write)


def run_pretraining_study(budget: Any, settings: Sequence[Any], datasets: Sequence[str], seeds: int,
                          make_config: Callable[[str, int, Path], Any], make_bench: Callable[[], Benchmark],
                          label: str, runs_dir: Path, progress: bool, say: Callable[[str], None]) -> StudyOutcome:
    """Pretrain one preset under each setting at equal FLOPs (a finished model is reused, an
    interrupted one resumes), fine-tune every encoder on datasets x seeds through Benchmark, and
    write the Table 2-shaped table with the pretraining budget."""
    from blurbkit.experiments import pretraining as study
    from blurbkit.experiments import pretraining_report as report
    from blurbkit.experiments.benchmark import model_label

    started = time.perf_counter()
    root = runs_dir / "pretraining"
    plans = study.plan(budget, settings, root, progress=progress)
    say(report.budget_table(budget, plans))
    summaries = study.pretrain_all(budget, plans, root, progress=progress, log=say)
    budget_text = report.budget_table(budget, plans, summaries)
    cells = [Cell(dataset, item.setting.name, make_config(dataset, seed, item.out))
             for seed in range(seeds) for item in plans for dataset in datasets]
    labels = {item.setting.name: model_label(str(item.out)) for item in plans}
    bench = make_bench()
    say(f"blurbkit: study pretraining: {len(datasets)} datasets x {len(settings)} settings x {seeds} seeds "
        f"= {len(cells)} fine-tuning runs ({label})")
    # Seed-major: every setting has a first result before any a second.
    bench.run_all([([(c.variant, c.config) for c in cells if c.variant == item.setting.name and c.config.seed == seed],
                    labels[item.setting.name]) for seed in range(seeds) for item in plans], label)
    rows = []
    for item in plans:
        grid = [(c.variant, c.config) for c in cells if c.variant == item.setting.name]
        rows.extend(bench.rows_for(grid, labels[item.setting.name], label))
    results = collect(cells, rows, lambda c: run_key("pretraining", c.variant, c.config, labels[c.variant], label).digest())
    table = report.results_table(settings, datasets, results, label)
    seconds = time.perf_counter() - started
    text = f"## Pretraining budget\n\n{budget_text}\n\n## Fine-tuned test scores\n\n{table}"

    def write() -> list[Path]:
        return list(report.write_report(runs_dir, f"ablation-pretraining-{label}", text, settings, datasets, results, plans))

    return StudyOutcome(table, list(bench.failures), seconds, write)


def run_stilt_study(plan: Any, executor: Any, threads_per_run: int, retries: int, runs_dir: Path, report_name: str,
                    title: str, table_only: bool, progress: bool) -> StudyOutcome:
    """The STILT pair or matrix (experiments/stilt.py): what the store lacks is trained in this
    process (`executor` None) or through the local pool / Ray, then the paper's table from every
    stored run; `table_only` trains nothing. `failures` holds failed runs and those never run."""
    from blurbkit.experiments.stilt import collect, run_in_process
    from blurbkit.experiments.stilt_report import stilt_table, write_stilt_report

    started = time.perf_counter()
    if table_only:
        not_run: list[str] = []
    elif executor is None:
        not_run = run_in_process(plan, progress=progress)
    else:
        from blurbkit.experiments.stilt_sweep import StiltSweep

        not_run = StiltSweep(plan, executor, threads_per_run, retries, progress=progress).run()
    bench = plan.bench
    cells = collect(plan, bench.store.rows(study="stilt", model=plan.model_label, budget=plan.budget))
    table = stilt_table(plan, cells)
    seconds = time.perf_counter() - started

    def write() -> list[Path]:
        return write_stilt_report(runs_dir, report_name, table, plan, cells, title)

    return StudyOutcome(table, [*bench.failures, *not_run], seconds, write)


def run_cv_study(bench: Benchmark, bases: Sequence[Any], folds: int, available: int, data: str | None, label: str,
                 budget: str, runs_dir: Path, report_only: bool) -> StudyOutcome:
    """Cross-validation (experiments/cv.py): every compared setting over folds 0..folds-1 through
    `bench` (this process, the local pool or Ray; `report_only` trains nothing), a table per setting
    and, with more than one, their fold-paired comparison."""
    from blurbkit.experiments.cv import (
        compare_table,
        cv_grid,
        cv_table,
        fold_coverage,
        fold_results,
        variant_name,
        write_cv_report,
    )
    from blurbkit.fileio import atomic_write

    started = time.perf_counter()
    dataset = bases[0].dataset
    grid = cv_grid(bases, folds)
    if not report_only:
        bench.run(grid, label, budget)
    coverage = fold_coverage(dataset, data, folds)
    tables, reports, results = [], [], {}
    for base in bases:
        variant = variant_name(base)
        per_fold = results[variant] = fold_results(bench, [(v, c) for v, c in grid if v == variant], label, budget)
        tables.append(cv_table(dataset, variant, base.featurizer, per_fold, folds, available, budget, coverage))
        reports.append((f"cv-{dataset}-{variant.replace('=', '-').replace(',', '_')}-{budget}", tables[-1], per_fold))
    comparison = compare_table(dataset, results, budget) if len(bases) > 1 else None
    seconds = time.perf_counter() - started

    def write() -> list[Path]:
        written = [path for name, table, per_fold in reports for path in write_cv_report(runs_dir, name, table, per_fold)]
        if comparison is not None:
            written.append(runs_dir / f"cv-{dataset}-compare-{budget}.md")
            with atomic_write(written[-1]) as handle:
                handle.write(comparison + "\n")
        return written

    table = "\n\n".join([*tables, *([comparison] if comparison else [])])
    return StudyOutcome(table, list(bench.failures), seconds, write)
