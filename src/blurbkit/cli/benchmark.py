"""`blurbkit benchmark`: every dataset x seed, stored, summarised next to the papers."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from blurbkit.cli.argtypes import non_negative_float, positive_int
from blurbkit.cli.finetune import add_store_options, add_training_options, config_from_args

if TYPE_CHECKING:
    from blurbkit.experiments.benchmark import Benchmark
    from blurbkit.experiments.executors import Executor


def add_executor_options(parser: argparse.ArgumentParser, executor_help: str) -> None:
    """The options of every command that spreads runs over the local process pool or Ray."""
    parser.add_argument("--executor", help=executor_help)
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="an existing Ray cluster (default: a local Ray instance; workers share --runs-dir)")
    parser.add_argument("--workers", type=int, help="runs at once (default: cores // threads per run); with --plan: the wall time for N")
    parser.add_argument("--threads-per-run", type=int, help="torch threads (Ray: CPUs) per run (default 1)")
    parser.add_argument("--retries", type=int, help="tries again a run that crashed (not one that failed on bad input) N times (default 2)")


def executor_choice(args: argparse.Namespace, default: str | None = None) -> str | None:
    """The executor asked for, checked (a Ray address that does not answer: one line, within
    seconds), its numbers filled in. None: one run after another in this process, where an executor
    option would be ignored, so it is refused."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.executors import check_executor

    if "_executor_checked" in vars(args):  # checked early for a fast error, asked again when the grid starts
        return args._executor_checked
    name = args.executor or default
    if name is None:
        given = [flag for flag, value in (("--workers", args.workers), ("--ray-address", args.ray_address),
                                          ("--threads-per-run", args.threads_per_run), ("--retries", args.retries))
                 if value is not None]
        if given:
            raise BlurbkitError(f"{', '.join(given)}: only with --executor local|ray (without it the runs go one after "
                                "another in this process)")
        return None
    check_executor(name)
    args.threads_per_run = 1 if args.threads_per_run is None else args.threads_per_run
    args.retries = 2 if args.retries is None else args.retries
    if args.threads_per_run < 1 or (args.workers is not None and args.workers < 1) or args.retries < 0:
        raise BlurbkitError("--threads-per-run and --workers must be at least 1, --retries at least 0")
    if name == "ray" and args.ray_address:
        from blurbkit.experiments.ray_executor import check_address

        check_address(args.ray_address)  # probed once per command
    args._executor_checked = name
    return name


def start_executor(args: argparse.Namespace, name: str) -> Executor:
    """The local pool or the Ray connection, and one line saying how many runs go at once."""
    from blurbkit.experiments.executors import make_executor

    executor = make_executor(name, args.threads_per_run, args.workers, args.ray_address, getattr(args, "gpus_per_run", None) or 0.0)
    print(f"blurbkit: executor {executor.name}: {executor.slots} runs at once, {args.threads_per_run} thread(s) each",
          file=sys.stderr)
    return executor


def grid_bench(args: argparse.Namespace, study: str) -> Benchmark:
    """The runner of a command's fixed grid (benchmark, ablate, cv): one run after another in this
    process, or on --executor. Call it after every other check: it opens the results store."""
    from blurbkit.experiments.benchmark import Benchmark
    from blurbkit.store.results import ResultsStore

    name = executor_choice(args)
    executor = start_executor(args, name) if name else None
    store = ResultsStore(args.store or args.runs_dir / "results.sqlite")
    return Benchmark(store=store, runs_dir=args.runs_dir, study=study, force=args.force, keep_going=args.keep_going,
                     executor=executor, threads=args.threads_per_run or 1, retries=args.retries or 0,
                     progress=not args.no_progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="fine-tune on BLURB datasets over seeds; print the BLURB table")
    parser.add_argument("--datasets", default="all", help="'all' (the 13 BLURB datasets) or a comma-separated list")
    parser.add_argument("--seeds", type=positive_int, help="seeds per dataset (default: the protocol's 10 or 5; 1 with --quick, except under "
                        "--protocol full, whose test seeds stay the protocol's)")
    parser.add_argument("--protocol", default="default",
                        help="default: the dataset's recipe (in this process, or on --executor); full: the SPEC §2 grid searched on dev "
                             "(tasks/grids.toml), then the test seeds on the best point")
    parser.add_argument("--grid", metavar="SPEC", help="full protocol: override the grid, e.g. 'lr=1e-5,3e-5;bs=16,32;epochs=3;select=2'")
    add_executor_options(parser, "local (a process pool on this machine) or ray; --protocol full: local by default, "
                         "--protocol default: one run after another in this process without it")
    parser.add_argument("--gpus-per-run", type=non_negative_float, help="Ray: GPUs each run declares (default 0)")
    parser.add_argument("--ship-runs", action="store_true",
                        help="Ray: run directories travel back to the driver (workers without the shared --runs-dir)")
    parser.add_argument("--plan", action="store_true", help="print runs, CPU-hours and wall time, and start nothing (costs come from this machine's measured "
                        "rates, or a short calibration run per dataset and model: 64 examples, one epoch)")
    add_store_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError

    if args.protocol not in ("default", "full"):
        raise BlurbkitError(f"unknown protocol {args.protocol!r} (default or full)")
    if args.protocol == "full":
        from blurbkit.cli.benchmark_full import run_full

        return run_full(args)
    if given := [name for name, value in {"--grid": args.grid, "--plan": args.plan, "--ship-runs": args.ship_runs}.items() if value]:
        raise BlurbkitError(f"{', '.join(given)}: only with --protocol full")
    executor_name = executor_choice(args)
    if args.gpus_per_run is not None and executor_name != "ray":
        raise BlurbkitError("--gpus-per-run: only with --executor ray")
    from blurbkit.experiments.benchmark import (
        apply_budget,
        blurb_table,
        budget_name,
        budget_profile,
        failed_runs,
        model_label,
        resolve_datasets,
        summarise,
    )
    from blurbkit.experiments.report import write_report
    from blurbkit.models.loading import resolve_model_dir
    from blurbkit.tasks.registry import get_dataset

    datasets = resolve_datasets(args.datasets)
    model_dir = resolve_model_dir(args.model)
    label = model_label(args.model)
    budget = budget_name(args.quick, args)
    args.no_save_model = not args.save_models
    configs = []
    for name in datasets:
        seeds = args.seeds or (1 if args.quick else get_dataset(name).seeds)
        for seed in range(seeds):
            config = config_from_args(args, name, seed, None)
            if args.quick:
                config = apply_budget(config, budget_profile("quick", name))
            configs.append(("standard", config))
    bench = grid_bench(args, "benchmark")
    print(f"blurbkit: benchmark of {model_dir} on {len(datasets)} datasets, {len(configs)} runs ({budget})", file=sys.stderr)
    started = time.perf_counter()
    bench.run(configs, label, budget)
    rows = bench.rows_for(configs, label, budget)
    per_dataset = summarise(rows).get("standard", {})
    failed = failed_runs(rows).get("standard")
    table = blurb_table(per_dataset, "this run", budget, failed)
    print(table)
    for name in datasets:
        for note in per_dataset.get(name, {}).get("notes", []):
            print(f"note: {get_dataset(name).title}: {note}")
    stored = sum(cell["wall_seconds"] for cell in per_dataset.values())
    print(f"wall time: {time.perf_counter() - started:.0f} s for the runs executed now; "
          f"{stored:.0f} s summed over the {len(rows)} runs in the table")
    write_report(args.runs_dir, f"benchmark-{budget}", table, per_dataset, failed)
    for failure in bench.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0
