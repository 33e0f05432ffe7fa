"""`blurbkit benchmark`: every dataset x seed, stored, summarised next to the papers."""

from __future__ import annotations

import argparse
import sys
import time

from blurbkit.cli.finetune import add_store_options, add_training_options, config_from_args


def add_executor_options(parser: argparse.ArgumentParser, executor_help: str) -> None:
    """The options of every command that spreads runs over the local process pool or Ray."""
    parser.add_argument("--executor", help=executor_help)
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="an existing Ray cluster (default: a local Ray instance; workers share --runs-dir)")
    parser.add_argument("--workers", type=int, help="runs at once (default: cores // threads per run); with --plan: the wall time for N")
    parser.add_argument("--threads-per-run", type=int, default=1, help="torch threads (Ray: CPUs) per run (default 1)")
    parser.add_argument("--retries", type=int, default=2, help="tries again a run that failed (not for bad input) N times")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="fine-tune on BLURB datasets over seeds; print the BLURB table")
    parser.add_argument("--datasets", default="all", help="'all' (the 13 BLURB datasets) or a comma-separated list")
    parser.add_argument("--seeds", type=int, help="seeds per dataset (default: the protocol's 10 or 5; 1 with --quick)")
    parser.add_argument("--protocol", default="default",
                        help="default: the dataset's recipe, in this process; full: the SPEC §2 grid searched on dev "
                             "(tasks/grids.toml), then the test seeds on the best point")
    parser.add_argument("--grid", metavar="SPEC", help="full protocol: override the grid, e.g. 'lr=1e-5,3e-5;bs=16,32;epochs=3;select=2'")
    add_executor_options(parser, "full protocol: local (a process pool on this machine, default) or ray")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs each run declares (default 0)")
    parser.add_argument("--ship-runs", action="store_true",
                        help="Ray: run directories travel back to the driver (workers without the shared --runs-dir)")
    parser.add_argument("--plan", action="store_true", help="print runs, CPU-hours and wall time; train nothing")
    add_store_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError

    if args.protocol not in ("default", "full"):
        raise BlurbkitError(f"unknown protocol {args.protocol!r} (default or full)")
    full_only = {"--grid": args.grid, "--executor": args.executor, "--ray-address": args.ray_address, "--plan": args.plan,
                 "--ship-runs": args.ship_runs}
    if args.protocol == "full":
        from blurbkit.cli.benchmark_full import run_full

        return run_full(args)
    if given := [name for name, value in full_only.items() if value]:
        raise BlurbkitError(f"{', '.join(given)}: only with --protocol full")
    from blurbkit.experiments.benchmark import (
        Benchmark,
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
    from blurbkit.store.results import ResultsStore
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
    store = ResultsStore(args.store or args.runs_dir / "results.sqlite")
    print(f"blurbkit: benchmark of {model_dir} on {len(datasets)} datasets, {len(configs)} runs ({budget})", file=sys.stderr)
    started = time.perf_counter()
    bench = Benchmark(store=store, runs_dir=args.runs_dir, force=args.force, keep_going=args.keep_going)
    bench.run(configs, label, budget)
    rows = bench.rows_for(configs, label, budget)
    per_dataset = summarise(rows).get("standard", {})
    table = blurb_table(per_dataset, "this run", budget, failed_runs(rows).get("standard"))
    print(table)
    for name in datasets:
        for note in per_dataset.get(name, {}).get("notes", []):
            print(f"note: {get_dataset(name).title}: {note}")
    stored = sum(cell["wall_seconds"] for cell in per_dataset.values())
    print(f"wall time: {time.perf_counter() - started:.0f} s for the runs executed now; "
          f"{stored:.0f} s summed over the {len(rows)} runs in the table")
    write_report(args.runs_dir, f"benchmark-{budget}", table, per_dataset)
    for failure in bench.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0
