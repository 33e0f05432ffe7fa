"""`blurbkit benchmark`: every dataset x seed, stored, summarised next to the papers."""

from __future__ import annotations

import argparse
import sys

from blurbkit.cli.argtypes import non_negative_float, positive_int
from blurbkit.cli.executor_options import add_executor_options, executor_choice, grid_bench
from blurbkit.cli.finetune import add_store_options, add_training_options, study_config


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
                        "rates, or a short calibration run per dataset and model: 64 examples, two epochs)")
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
        budget_name,
        model_label,
        resolve_datasets,
    )
    from blurbkit.experiments.study_run import run_benchmark
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
            configs.append(("standard", study_config(args, name, seed)))
    print(f"blurbkit: benchmark of {model_dir} on {len(datasets)} datasets, {len(configs)} runs ({budget})", file=sys.stderr)
    outcome = run_benchmark(configs, grid_bench(args, "benchmark"), datasets, label, budget, args.runs_dir)
    print(outcome.table)
    for note in outcome.notes:
        print(f"note: {note}")
    print(f"wall time: {outcome.seconds:.0f} s for the runs executed now; "
          f"{outcome.stored_seconds:.0f} s summed over the {outcome.runs} runs in the table")
    outcome.write()
    for failure in outcome.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if outcome.failures else 0
