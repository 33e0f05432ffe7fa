"""`blurbkit ablate`: one modeling-choice study over datasets x variants x seeds, one table."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from blurbkit.cli.finetune import add_store_options, add_training_options, config_from_args

ABLATIONS = ("tagging", "heads", "relation", "sll")
STABILITY = ("optimization", "stability", "low-resource", "pruning", "search")  # experiments/stability.py
STUDIES = ABLATIONS + STABILITY


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate",
        help="compare modeling choices (tagging scheme, token heads, relation input/encoding, SLL heads) "
        "or fine-tuning stabilisation methods (optimization, stability, low-resource, pruning, search)",
        description="Runs every dataset x variant x seed through the fine-tuning engine and the results "
        "store, then prints a table: rows = datasets, columns = variants, test mean ± std.",
    )
    parser.add_argument("--study", required=True, choices=STUDIES)
    parser.add_argument("--datasets", help="comma-separated (default: the study's: tagging/heads bc5chem,ncbi_disease; "
                        "relation chemprot,ddi; sll chemprot,ddi,gad; optimization biosses; stability "
                        "biosses,bioasq,pubmedqa; low-resource chemprot,ddi; pruning biosses,chemprot,bioasq; "
                        "search biosses,pubmedqa,ddi,bioasq)")
    parser.add_argument("--variants", help="comma-separated subset of the study's variants (default: all)")
    parser.add_argument("--seeds", type=int, help="seeds per cell (default 3; stability studies the papers': "
                        "10 for optimization and stability, 5 for the others)")
    add_store_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.study in STABILITY:
        return run_stability(args)
    from blurbkit.experiments.ablation import (
        ablation_table,
        build_grid,
        check_no_conflict,
        flat_cells,
        get_study,
    )
    from blurbkit.experiments.benchmark import (
        Benchmark,
        apply_budget,
        budget_profile,
        failed_runs,
        summarise,
    )
    from blurbkit.experiments.report import write_report
    from blurbkit.store.results import ResultsStore

    study = get_study(args.study)
    args.seeds, datasets, variants, label, budget = study_setup(args, study, default_seeds=3)

    def make_config(dataset: str, seed: int):
        config = config_from_args(args, dataset, seed, None)
        check_no_conflict(study, config)
        return apply_budget(config, budget_profile("quick", dataset)) if args.quick else config

    grid, skipped = build_grid(study, datasets, variants, args.seeds, make_config)
    for (dataset, variant), why in sorted(skipped.items()):
        print(f"blurbkit: note: {dataset} [{variant}] not run: {why}", file=sys.stderr)
    store = ResultsStore(args.store or args.runs_dir / "results.sqlite")
    print(f"blurbkit: ablation {study.name}: {len(datasets)} datasets x {len(variants)} variants x {args.seeds} seeds "
          f"= {len(grid)} runs ({budget})", file=sys.stderr)
    started = time.perf_counter()
    bench = Benchmark(store=store, runs_dir=args.runs_dir, study=study.name, force=args.force, keep_going=args.keep_going)
    bench.run(grid, label, budget)
    rows = bench.rows_for(grid, label, budget)
    summary = summarise(rows)
    table = ablation_table(study, summary, datasets, variants, skipped, budget, failed_runs(rows))
    print(table)
    print(f"wall time: {time.perf_counter() - started:.0f} s for the runs executed now")
    write_report(args.runs_dir, f"ablation-{study.name}-{budget}", table, flat_cells(summary))
    for failure in bench.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0


def run_stability(args: argparse.Namespace) -> int:
    """A fine-tuning stability study (experiments/stability.py): its table, md/csv/png."""
    from blurbkit.experiments.benchmark import (
        Benchmark,
        apply_budget,
        budget_profile,
        run_key,
    )
    from blurbkit.experiments.stability import (
        build_cells,
        check_train_size,
        collect,
        encoder_parameters,
        get_stability_study,
        stability_table,
        write_stability_report,
    )
    from blurbkit.store.results import ResultsStore

    study = get_stability_study(args.study)
    seeds, datasets, variants, label, budget = study_setup(args, study, default_seeds=study.seeds)

    def make_config(dataset: str, seed: int):
        config = config_from_args(args, dataset, seed, None)
        return apply_budget(config, budget_profile("quick", dataset)) if args.quick else config

    check_train_size(study, args.max_train_examples)
    cells = build_cells(study, datasets, variants, seeds, make_config)
    store = ResultsStore(args.store or args.runs_dir / "results.sqlite")
    rows = len({cell.row for cell in cells})
    print(f"blurbkit: study {study.name}: {rows} rows x {len(variants)} methods x {seeds} seeds = {len(cells)} runs "
          f"({budget})", file=sys.stderr)
    started = time.perf_counter()
    bench = Benchmark(store=store, runs_dir=args.runs_dir, study=study.name, force=args.force, keep_going=args.keep_going)
    grid = [(cell.variant, cell.config) for cell in cells]
    bench.run(grid, label, budget)
    results = collect(cells, bench.rows_for(grid, label, budget),
                      lambda cell: run_key(study.name, cell.variant, cell.config, label, budget).digest())
    parameters = None
    if study.cost_columns:
        parameters = {k: encoder_parameters(args.model, k) for k in sorted({cell.config.drop_layers for cell in cells})}
    table = stability_table(study, cells, results, variants, budget, parameters)
    print(table)
    print(f"wall time: {time.perf_counter() - started:.0f} s for the runs executed now")
    for path in write_stability_report(args.runs_dir, f"study-{study.name}-{budget}", table, study, results, variants):
        print(f"blurbkit: wrote {path}", file=sys.stderr)
    for failure in bench.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0


def study_setup(args: argparse.Namespace, study: Any, default_seeds: int) -> tuple[int, list[str], list[Any], str, str]:
    """What every study run starts from: seeds, datasets, variants, the model's store label and the budget name."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.ablation import select_variants
    from blurbkit.experiments.benchmark import model_label, resolve_datasets
    from blurbkit.models.loading import resolve_model_dir

    seeds = default_seeds if args.seeds is None else args.seeds
    if seeds < 1:
        raise BlurbkitError("--seeds must be at least 1")
    datasets = resolve_datasets(args.datasets or list(study.datasets))
    variants = select_variants(study, args.variants)
    resolve_model_dir(args.model)
    budget = "quick" if args.quick else "full"
    if args.max_test_examples is not None and not args.quick:
        budget = f"test{args.max_test_examples}"
    args.no_save_model = not args.save_models
    return seeds, datasets, variants, model_label(args.model), budget
