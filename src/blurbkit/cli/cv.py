"""`blurbkit cv`: k-fold cross-validation of a dataset distributed as folds (AIMed PPI)."""

from __future__ import annotations

import argparse
import sys
import time

from blurbkit.cli.finetune import add_store_options, add_training_options, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cv",
        help="k-fold cross-validation (AIMed PPI): one run per fold, P / R / F1 per fold and mean ± std",
        description="Runs fold k = 0..FOLDS-1 as test (document-disjoint folds; dev = the next fold) through the "
        "fine-tuning engine and the results store (stored folds are skipped, a killed fold resumes), then prints "
        "P / R / F1 per fold and their mean ± std, written as md/csv/png to --runs-dir. Any fine-tuning option "
        "applies to every fold, e.g. --featurizer sll_attention.",
    )
    parser.add_argument("--dataset", required=True, help="a dataset with folds (aimed)")
    parser.add_argument("--folds", type=int, help="folds to run, 0..N-1 (default: all the dataset has)")
    parser.add_argument("--seed", type=int, default=0)
    add_store_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.data.folds import fold_count
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.benchmark import (
        Benchmark,
        apply_budget,
        budget_name,
        budget_profile,
        model_label,
        resolve_datasets,
    )
    from blurbkit.experiments.cv import (
        STUDY,
        check_folds,
        cv_grid,
        cv_table,
        fold_coverage,
        fold_results,
        variant_name,
        write_cv_report,
    )
    from blurbkit.models.loading import resolve_model_dir
    from blurbkit.store.results import ResultsStore

    (dataset,) = resolve_datasets(args.dataset)
    if args.fold != 0:
        raise BlurbkitError("--fold is what cv varies; leave it out (--folds N runs folds 0..N-1)")
    available = fold_count(dataset, args.data)  # no folds / a prepared folder: one line before any training
    folds = available if args.folds is None else args.folds
    check_folds(folds, available)
    resolve_model_dir(args.model)
    args.no_save_model = not args.save_models
    base = config_from_args(args, dataset, args.seed, None)
    if args.quick:
        base = apply_budget(base, budget_profile("quick", dataset))
    budget = budget_name(args.quick, args)
    grid = cv_grid(base, folds)
    label = model_label(args.model)
    variant = variant_name(base)
    print(f"blurbkit: cv {dataset}: {folds} of {available} folds [{variant}] ({budget})", file=sys.stderr)
    store = ResultsStore(args.store or args.runs_dir / "results.sqlite")
    bench = Benchmark(store=store, runs_dir=args.runs_dir, study=STUDY, force=args.force, keep_going=args.keep_going)
    started = time.perf_counter()
    bench.run(grid, label, budget)
    per_fold = fold_results(bench, grid, label, budget)
    coverage = fold_coverage(dataset, args.data, folds)
    table = cv_table(dataset, variant, base.featurizer, per_fold, folds, available, budget, coverage)
    print(table)
    print(f"wall time: {time.perf_counter() - started:.0f} s for the runs executed now")
    name = f"cv-{dataset}-{variant.replace('=', '-').replace(',', '_')}-{budget}"
    for path in write_cv_report(args.runs_dir, name, table, per_fold):
        print(f"blurbkit: wrote {path}", file=sys.stderr)
    for failure in bench.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0
