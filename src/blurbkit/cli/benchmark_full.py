"""`blurbkit benchmark --protocol full`: the SPEC §2 search and test seeds through an executor
(parsing and printing only; experiments/protocol.py, sweep.py, plan.py do the work)."""

from __future__ import annotations

import argparse
import sys

from blurbkit.cli.executor_options import executor_choice, start_executor
from blurbkit.cli.finetune import study_config
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import check_writable


def check_fixed(args: argparse.Namespace, who: str = "the full protocol") -> None:
    """A grid search sets lr, batch size and epochs itself: a fixed value would be overridden."""
    fixed = [flag for flag, value in (("--lr", args.lr), ("--batch-size", args.batch_size), ("--epochs", args.epochs)) if value]
    if fixed:
        raise BlurbkitError(f"{', '.join(fixed)}: {who} searches these; set them with --grid")


def protocols_from_args(args: argparse.Namespace, overrides: dict) -> list:
    from blurbkit.experiments.benchmark import resolve_datasets
    from blurbkit.experiments.protocol import DatasetProtocol

    protocols = []
    for name in resolve_datasets(args.datasets):
        # paths: driver.portable; with --quick the budget's data sizes (its grid is grids.toml [quick.*])
        base = study_config(args, name, 0, progress=False)
        protocols.append(DatasetProtocol.make(base, overrides, args.seeds, protocol="quick" if args.quick else "full"))
    return protocols


def run_full(args: argparse.Namespace) -> int:
    from blurbkit.experiments.benchmark import blurb_table, budget_name, model_label
    from blurbkit.experiments.cost import hours
    from blurbkit.experiments.executors import machine_cores, pool_size
    from blurbkit.experiments.plan import make_plan
    from blurbkit.experiments.protocol import chosen_table, describe, parse_grid
    from blurbkit.experiments.report import write_report
    from blurbkit.experiments.sweep import Sweep
    from blurbkit.models.loading import resolve_model_dir
    from blurbkit.store.results import ResultsStore

    # Every check that can refuse the command comes before the store is opened: bad input stores nothing.
    overrides = parse_grid(args.grid)
    executor_name = executor_choice(args, default="local")
    assert executor_name is not None
    if args.gpus_per_run is not None and executor_name != "ray":
        raise BlurbkitError("--gpus-per-run: only with --executor ray")
    check_fixed(args)
    resolve_model_dir(args.model)
    label, budget = model_label(args.model), budget_name(args.quick, args)
    args.no_save_model = not args.save_models
    protocols = protocols_from_args(args, overrides)
    store_path = args.store or args.runs_dir / "results.sqlite"
    check_writable(args.runs_dir / ".blurbkit-write-check", "--runs-dir")  # the folder itself, made if missing
    check_writable(store_path, "results store", file=True)
    threads, cores = args.threads_per_run, machine_cores()
    workers = pool_size(threads, args.workers)
    total = sum(p.run_count() for p in protocols)
    header = f"blurbkit: full protocol on {len(protocols)} datasets, {total} runs ({budget})\n{describe(protocols)}"
    if args.plan:
        print(header, file=sys.stderr)
        rows = ResultsStore(store_path).rows() if store_path.exists() else []
        print(make_plan(protocols, rows, label, budget, threads, cores).text(workers))
        return 0
    executor = start_executor(args, executor_name)
    print(header, file=sys.stderr)
    store = ResultsStore(store_path)
    try:
        plan = make_plan(protocols, store.rows(), label, budget, threads, cores, calibrate_missing=False)
    except LookupError:
        plan = None  # no measured throughput of this model yet: no estimate to compare with
    sweep = Sweep(store, executor, args.runs_dir, label, budget, threads=threads, retries=args.retries,
                  ship=args.ship_runs, force=args.force, progress=not args.no_progress)
    result = sweep.run(protocols)
    print(chosen_table(result.chosen, result.per_dataset, result.failed))
    print()
    table = blurb_table(result.per_dataset, "this run", budget, result.failed)
    print(table)
    write_report(args.runs_dir, f"protocol-{budget}", chosen_table(result.chosen, result.per_dataset, result.failed)
                 + "\n\n" + table, result.per_dataset, result.failed)
    actual = f"{result.executed} runs, {result.cpu_seconds / 3600:.2f} CPU-hours, wall {hours(result.wall_seconds)}"
    if plan is not None and plan.to_run:
        print(f"plan vs actual: planned {plan.to_run} runs, {plan.cpu_seconds / 3600:.2f} CPU-hours, wall "
              f"{hours(plan.wall(executor.slots))}; actual {actual}")
    else:
        print(f"actual: {actual} (no plan: no measured throughput of this model before the sweep)")
    for line in result.failures:
        print(f"not done: {line}", file=sys.stderr)
    return 1 if result.failures else 0
