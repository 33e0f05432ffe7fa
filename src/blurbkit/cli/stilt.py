"""`blurbkit stilt`: intermediate-task transfer (STILT), one pair or the matrix of all ordered pairs."""

from __future__ import annotations

import argparse
import sys

from blurbkit.cli.argtypes import positive_int
from blurbkit.cli.executor_options import add_executor_options, executor_choice, start_executor
from blurbkit.cli.finetune import add_store_options, add_training_options, study_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stilt",
        help="intermediate-task transfer: fine-tune on task A, then on target B from A's encoder (or the matrix of all pairs)",
        description="STILT (Jeong & Hwang): fine-tune on an intermediate task, keep the encoder, build a new head for "
        "the target and fine-tune on it with the target's recipe; scores the target's test set beside its baseline "
        "(no intermediate task). Every run goes through the results store: stored runs are skipped, so an "
        "interrupted matrix continues where it stopped.",
    )
    parser.add_argument("--intermediate", metavar="A", help="the intermediate dataset (one pair)")
    parser.add_argument("--target", metavar="B", help="the target dataset (one pair)")
    parser.add_argument("--matrix", action="store_true", help="every ordered pair of --datasets plus each baseline")
    parser.add_argument("--datasets", help="--matrix: comma-separated datasets (at least two)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per cell (default 3, the paper's)")
    parser.add_argument("--plan", action="store_true", help="print the runs (and how many are stored); train nothing")
    add_executor_options(parser, "run through an executor: local (a process pool on this machine) or ray; "
                         "default: one run after another in this process")
    parser.add_argument("--table-only", action="store_true",
                        help="tabulate the runs stored so far (md/csv/heatmap; cells with fewer seeds say [n=k]); train nothing")
    parser.add_argument("--report", metavar="NAME", help="name of the md/csv/png/svg files in --runs-dir (default stilt-BUDGET)")
    add_store_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def chosen_datasets(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(intermediates, targets): the matrix's datasets both ways, or the one pair; checked."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.benchmark import resolve_datasets
    from blurbkit.experiments.stilt import check_matrix, check_pair

    if args.matrix:
        if args.intermediate or args.target:
            raise BlurbkitError("--matrix takes --datasets, not --intermediate/--target")
        if not args.datasets:
            raise BlurbkitError("--matrix needs --datasets LIST (e.g. bc5chem,ncbi_disease,chemprot,ddi,gad,pubmedqa)")
        datasets = resolve_datasets(args.datasets)
        check_matrix(datasets)
        return datasets, datasets
    if not (args.intermediate and args.target):
        raise BlurbkitError("give --intermediate A and --target B, or --matrix --datasets LIST")
    if args.datasets:
        raise BlurbkitError("--datasets is for --matrix; one pair takes --intermediate and --target")
    sources, targets = resolve_datasets(args.intermediate), resolve_datasets(args.target)
    if len(sources) != 1 or len(targets) != 1:
        raise BlurbkitError("--intermediate and --target name one dataset each (use --matrix for more)")
    check_pair(sources[0], targets[0])
    return sources, targets


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.benchmark import (
        Benchmark,
        budget_name,
        model_label,
    )
    from blurbkit.experiments.stilt import StiltPlan, head_lines, stored_digests
    from blurbkit.experiments.study_run import run_stilt_study
    from blurbkit.models.loading import resolve_model_dir
    from blurbkit.store.results import ResultsStore

    # Every check comes before the store is opened or anything is trained.
    sources, targets = chosen_datasets(args)  # --seeds: at least 1 by its argparse type
    executor_name = executor_choice(args)
    model_dir = resolve_model_dir(args.model)
    label, budget = model_label(args.model), budget_name(args.quick, args)
    args.no_save_model = not args.save_models

    # An absolute runs dir: the intermediate models are found by path, by this process or by workers
    # elsewhere (data and model paths are made absolute for workers by experiments/driver.py `portable`).
    args.runs_dir = args.runs_dir.resolve()

    def make_config(dataset: str, seed: int):
        # One bar over the runs (experiments/progress.py) instead of each run's step bars under it.
        return study_config(args, dataset, seed, progress=False)

    store_path = args.store or args.runs_dir / "results.sqlite"
    if args.plan and args.table_only:
        raise BlurbkitError("--plan and --table-only: choose one")
    if args.table_only and not store_path.exists():
        raise BlurbkitError("no results store: nothing to tabulate", path=store_path)
    if args.plan and not store_path.exists():
        store_path = None
    store = ResultsStore(store_path) if store_path is not None else None
    bench = Benchmark(store=store, runs_dir=args.runs_dir, study="stilt", force=args.force,  # type: ignore[arg-type]
                      keep_going=args.keep_going)
    plan = StiltPlan(sources, targets, args.seeds, make_config, bench, label, budget)
    what = "matrix" if args.matrix else f"{sources[0]} -> {targets[0]}"
    stored = stored_digests(plan) if store is not None else set()
    left = sum(run.key.digest() not in stored for run in plan.runs())
    print(f"blurbkit: STILT {what} on {model_dir}: {plan.describe()}; {len(plan.runs()) - left} stored, {left} to train",
          file=sys.stderr)
    for line in head_lines(sources, targets):
        print(f"blurbkit: {line}", file=sys.stderr)
    if args.plan:
        return 0
    executor = None if args.table_only or executor_name is None else start_executor(args, executor_name)
    title = f"STILT, {'default MiniLM' if args.model is None else model_dir.name}, {args.seeds} seed(s), {budget}"
    outcome = run_stilt_study(plan, executor, args.threads_per_run, args.retries, args.runs_dir,
                              args.report or f"stilt-{budget}", title, args.table_only, progress=not args.no_progress)
    print(outcome.table)
    if not args.table_only:
        print(f"wall time: {outcome.seconds:.0f} s for the runs executed now")
    for path in outcome.write():
        print(f"blurbkit: wrote {path}", file=sys.stderr)
    for line in outcome.failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if outcome.failures else 0
