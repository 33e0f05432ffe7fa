"""`blurbkit cv`: k-fold cross-validation of a dataset distributed as folds (AIMed PPI)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from blurbkit.cli.executor_options import add_executor_options, executor_choice, grid_bench
from blurbkit.cli.finetune import add_store_options, add_training_options, study_config

if TYPE_CHECKING:
    from blurbkit.train.config import FinetuneConfig


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
    parser.add_argument("--featurizers", metavar="LIST",
                        help="compare featurizers fold by fold, e.g. cls,sll_attention (one table each and a paired comparison)")
    parser.add_argument("--report-only", action="store_true",
                        help="print the tables from the folds already stored, train nothing (e.g. while a run goes on)")
    add_executor_options(parser, "run the folds through an executor: local (a process pool on this machine) or ray; "
                         "default: one fold after another in this process")
    add_store_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def compared_configs(args: argparse.Namespace, dataset: str) -> list[FinetuneConfig]:
    """The run's config, or one per --featurizers entry (compared fold by fold)."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.tasks.registry import get_dataset

    base = study_config(args, dataset, args.seed)
    if not args.featurizers:
        return [base]
    if args.featurizer:
        raise BlurbkitError("give --featurizer or --featurizers, not both")
    from blurbkit.models.featurizers import FEATURIZERS

    names = [n.strip() for n in args.featurizers.split(",") if n.strip()]
    if not names:
        raise BlurbkitError(f"--featurizers: no featurizer named in {args.featurizers!r}")
    for name in names:  # every name before the first fold trains, not after its folds are stored
        FEATURIZERS.get(name)
    default = get_dataset(dataset).task.featurizer  # the task's own part keeps the plain run's key
    return [base.replace(featurizer=None if name == default else name) for name in names]


def run(args: argparse.Namespace) -> int:
    from blurbkit.data.folds import fold_count
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.benchmark import (
        budget_name,
        model_label,
        resolve_datasets,
    )
    from blurbkit.experiments.cv import STUDY, check_folds, variant_name
    from blurbkit.experiments.study_run import run_cv_study
    from blurbkit.models.loading import resolve_model_dir

    (dataset,) = resolve_datasets(args.dataset)
    if args.fold != 0:
        raise BlurbkitError("--fold is what cv varies; leave it out (--folds N runs folds 0..N-1)")
    available = fold_count(dataset, args.data)  # no folds / a prepared folder: one line before any training
    folds = available if args.folds is None else args.folds
    check_folds(folds, available)
    if executor_choice(args) and args.report_only:
        raise BlurbkitError("--report-only trains nothing: leave out --executor")
    resolve_model_dir(args.model)
    args.no_save_model = not args.save_models
    bases = compared_configs(args, dataset)
    budget = budget_name(args.quick, args)
    label = model_label(args.model)
    names = ", ".join(variant_name(b) for b in bases)
    print(f"blurbkit: cv {dataset}: {folds} of {available} folds [{names}] ({budget})", file=sys.stderr)
    bench = grid_bench(args, STUDY)
    outcome = run_cv_study(bench, bases, folds, available, args.data, label, budget, args.runs_dir, args.report_only)
    print(outcome.table)
    print(f"wall time: {outcome.seconds:.0f} s for the runs executed now")
    for path in outcome.write():
        print(f"blurbkit: wrote {path}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if outcome.failures else 0
