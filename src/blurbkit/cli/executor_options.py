"""The options of every command that spreads runs over the local process pool or Ray (benchmark,
ablate, cv, stilt): `--executor`, `--ray-address`, `--workers`, `--threads-per-run`, `--retries`;
checked before anything starts, then the executor and the grid's runner built from them."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blurbkit.experiments.benchmark import Benchmark
    from blurbkit.experiments.executors import Executor


def add_executor_options(parser: argparse.ArgumentParser, executor_help: str) -> None:
    """The options of every command that spreads runs over the local process pool or Ray."""
    parser.add_argument("--executor", help=executor_help)
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="an existing Ray cluster (default: a local Ray instance; workers share --runs-dir)")
    parser.add_argument("--workers", type=int, help="runs at once (default: cores // threads per run; on Ray at most N, "
                        "default the cluster's CPUs // threads per run); with --plan: the wall time for N")
    parser.add_argument("--threads-per-run", type=int, help="torch threads (Ray: CPUs) per run (default 1)")
    parser.add_argument("--retries", type=int, help="tries again a run that crashed (not one that failed on bad input) N times (default 2)")


def executor_choice(args: argparse.Namespace, default: str | None = None) -> str | None:
    """The executor asked for, checked (a Ray address that does not answer: one line, within
    seconds), its numbers filled in. None: one run after another in this process, where an executor
    option would be ignored, so it is refused."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.executor_choice import check_executor

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
    if name == "local" and args.ray_address:
        raise BlurbkitError("--ray-address: only with --executor ray (the local pool runs on this machine)")
    args.threads_per_run = 1 if args.threads_per_run is None else args.threads_per_run
    args.retries = 2 if args.retries is None else args.retries
    for flag, value, least in (("--threads-per-run", args.threads_per_run, 1), ("--workers", args.workers, 1),
                               ("--retries", args.retries, 0)):
        if value is not None and value < least:
            raise BlurbkitError(f"{flag} {value}: must be at least {least}")
    if name == "ray" and args.ray_address:
        from blurbkit.experiments.ray_executor import check_address

        check_address(args.ray_address)  # probed once per command
    args._executor_checked = name
    return name


def start_executor(args: argparse.Namespace, name: str) -> Executor:
    """The local pool or the Ray connection, and one line saying how many runs go at once."""
    from blurbkit.experiments.executor_choice import make_executor
    from blurbkit.experiments.plan import runs_at_once

    executor = make_executor(name, args.threads_per_run, args.workers, args.ray_address, getattr(args, "gpus_per_run", None) or 0.0)
    print(f"blurbkit: executor {executor.name}: {runs_at_once(executor.slots)}, {args.threads_per_run} thread(s) each",
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
