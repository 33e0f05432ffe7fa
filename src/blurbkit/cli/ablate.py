"""`blurbkit ablate`: one modeling-choice study over datasets x variants x seeds, one table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from blurbkit.cli.argtypes import finite_float, positive_int
from blurbkit.cli.executor_options import add_executor_options, executor_choice, grid_bench
from blurbkit.cli.finetune import add_store_options, add_training_options, study_config
from blurbkit.experiments.ablation import STUDIES as ABLATION_STUDIES
from blurbkit.experiments.stability import STUDIES as STABILITY_STUDIES

# The studies as the experiments register them (a new Study is a choice at once); pretraining is
# experiments/pretraining.py, a study of its own shape.
ABLATIONS = tuple(ABLATION_STUDIES)
STABILITY = tuple(STABILITY_STUDIES)
STUDIES = ABLATIONS + STABILITY + ("pretraining",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate",
        help="compare modeling choices (tagging scheme, token heads, relation input/encoding, SLL heads, "
        "sentence-pair encoding), "
        "fine-tuning stabilisation methods (optimization, stability, low-resource, pruning, search) "
        "or pretraining settings at equal compute (pretraining)",
        description="Runs every dataset x variant x seed through the fine-tuning engine and the results "
        "store, then prints a table: rows = datasets, columns = variants, test mean ± std.",
    )
    parser.add_argument("--study", required=True, choices=STUDIES)
    parser.add_argument("--datasets", help="comma-separated (default: the study's: tagging/heads bc5chem,ncbi_disease; "
                        "relation chemprot,ddi; sll chemprot,ddi,gad; pair biosses; optimization biosses; stability "
                        "biosses,bioasq,pubmedqa; low-resource chemprot,ddi; pruning biosses,chemprot,bioasq; "
                        "search biosses,pubmedqa,ddi,bioasq; pretraining bc5chem,ncbi_disease,ddi,gad,biosses,pubmedqa)")
    parser.add_argument("--variants", help="comma-separated subset of the study's variants (default: all)")
    parser.add_argument("--seeds", type=positive_int, help="seeds per cell (default 3; the stability studies "
                        "optimization, stability, low-resource, pruning and search: the protocol's per dataset, 10 for "
                        "BIOSSES, BioASQ and PubMedQA, 5 for the rest)")
    parser.add_argument("--grid", metavar="SPEC", help="study search: override the protocol's grid (tasks/grids.toml), "
                        "as benchmark --protocol full, e.g. 'lr=1e-5,3e-5;bs=16;epochs=3;select=2'")
    add_executor_options(parser, "run the grid through an executor: local (a process pool on this machine) or ray; "
                         "default: one run after another in this process")
    parser.add_argument("--plan", action="store_true", help="print the runs left, their CPU-hours and the wall time on "
                        "--workers runs at once (from this model's measured throughput in the store, else a short "
                        "calibration run), and start nothing")
    add_store_options(parser)
    add_training_options(parser)
    add_pretraining_options(parser)
    parser.set_defaults(func=run)


def add_pretraining_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--study pretraining (MLM+NSP, MLM only, MLM single-sequence, ELECTRA at equal FLOPs)")
    group.add_argument("--corpus", nargs="+", help="pretraining corpus files or folders (default: DATA/pubmed_text, DATA = the raw folder of --data, $BLURBKIT_DATA or ../shared/data)")
    group.add_argument("--tokenizer", default="default",
                       help="vocabulary for the from-scratch models (default: the default model's, 30,522 pieces)")
    group.add_argument("--preset", default="mini", help="model size preset or BERT config JSON (default mini: 4 x 256)")
    group.add_argument("--pretrain-steps", type=int, default=1000,
                       help="optimizer steps of the standard setting; its FLOPs are every setting's budget (default 1000)")
    group.add_argument("--pretrain-batch-size", type=int, default=32, help="sequences per pretraining step (default 32)")
    group.add_argument("--pretrain-max-length", type=int, default=128, help="tokens per pretraining sequence (default 128)")
    group.add_argument("--pretrain-lr", type=finite_float, default=1e-3, help="peak pretraining learning rate (default 1e-3)")
    group.add_argument("--pretrain-max-docs", type=int, help="use only the first N corpus documents")
    group.add_argument("--generator-size", type=finite_float, default=0.25,
                       help="ELECTRA generator width as a fraction of the discriminator's (default 0.25)")


PRETRAINING_DESTS = ("corpus", "tokenizer", "preset", "pretrain_steps", "pretrain_batch_size", "pretrain_max_length",
                     "pretrain_lr", "pretrain_max_docs", "generator_size")


def pretraining_options_given(args: argparse.Namespace) -> list[str]:
    """The --study pretraining options set to other than their defaults (another study would ignore them)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_pretraining_options(parser)
    return [f"--{dest.replace('_', '-')}" for dest in PRETRAINING_DESTS if getattr(args, dest) != parser.get_default(dest)]


def searched_studies() -> list[str]:
    """The studies with a dev-selected grid (the only ones --grid applies to)."""
    from blurbkit.experiments.stability import STUDIES as STABILITY_STUDIES

    return [name for name, study in STABILITY_STUDIES.items() if any(v.searched for v in study.variants)]


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError

    if args.grid and args.study not in searched_studies():
        raise BlurbkitError(f"--grid: only with --study {'|'.join(searched_studies())} (study {args.study} searches no grid)")
    if args.study != "pretraining" and (given := pretraining_options_given(args)):
        raise BlurbkitError(f"{', '.join(given)}: only with --study pretraining")
    if args.plan and args.study == "pretraining":
        raise BlurbkitError("--plan: not for --study pretraining (its cost is the pretraining: --pretrain-steps sets it)")
    if args.study in STABILITY:
        return run_stability(args)
    if args.study == "pretraining":
        return run_pretraining(args)
    from blurbkit.experiments.ablation import build_grid, check_no_conflict, get_study
    from blurbkit.experiments.study_run import run_ablation_study

    study = get_study(args.study)
    args.seeds, datasets, variants, label, budget = study_setup(args, study, default_seeds=3)

    def make_config(dataset: str, seed: int):
        config = study_config(args, dataset, seed)
        check_no_conflict(study, config)
        return config

    grid, skipped = build_grid(study, datasets, variants, args.seeds, make_config)
    for (dataset, variant), why in sorted(skipped.items()):
        print(f"blurbkit: note: {dataset} [{variant}] not run: {why}", file=sys.stderr)
    print(f"blurbkit: ablation {study.name}: {len(datasets)} datasets x {len(variants)} variants x {args.seeds} seeds "
          f"= {len(grid)} runs ({budget})", file=sys.stderr)
    if args.plan:
        from blurbkit.experiments.plan import grid_runs

        return print_plan(args, label, grid_runs(study.name, grid, label, budget))
    outcome = run_ablation_study(study, grid, skipped, grid_bench(args, study.name), datasets, variants, label, budget,
                                 args.runs_dir)
    return report(outcome, "the runs executed now")


def run_stability(args: argparse.Namespace) -> int:
    """A fine-tuning stability study (experiments/stability.py): its table, md/csv/png. The search
    study's searched methods run in two stages (experiments/search_study.py)."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.protocol import parse_grid
    from blurbkit.experiments.search_study import plan_searches
    from blurbkit.experiments.stability import build_cells, check_train_size, get_stability_study
    from blurbkit.experiments.study_run import run_stability_study

    study = get_stability_study(args.study)
    overrides = parse_grid(args.grid)  # before anything else: a bad grid is one line, nothing stored
    seeds, datasets, variants, label, budget = study_setup(args, study, default_seeds=None)
    searched = [v for v in variants if v.searched]
    if args.grid and not searched:
        raise BlurbkitError(f"--grid: none of the methods selected with --variants searches a grid "
                            f"({', '.join(v.name for v in study.variants if v.searched)} do)")
    if searched:
        from blurbkit.cli.benchmark_full import check_fixed

        check_fixed(args, f"study {study.name}")

    def make_config(dataset: str, seed: int):
        return study_config(args, dataset, seed)

    check_train_size(study, args.max_train_examples)
    cells = build_cells(study, datasets, variants, seeds, make_config)
    searches = plan_searches(study, datasets, searched, seeds, make_config, overrides, "quick" if args.quick else "full")
    total = len(cells) + sum(s.run_count() for s in searches)
    rows = len({cell.row for cell in cells} | {s.row for s in searches})
    print(f"blurbkit: study {study.name}: {rows} rows x {len(variants)} methods x {seeds_text(datasets, seeds)}"
          + (f" (+ the selection runs of {len(searches)} searches)" if searches else "") + f" = {total} runs ({budget})",
          file=sys.stderr)
    if args.plan:
        from blurbkit.experiments.search_study import planned_runs

        return print_plan(args, label, planned_runs(study.name, cells, searches, stored_rows(args), label, budget))
    outcome = run_stability_study(study, variants, cells, searches, lambda: grid_bench(args, study.name), label, budget,
                                  args.runs_dir, args.model, lambda line: print(line, file=sys.stderr))
    return report(outcome, "the runs executed now")


def stored_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The results store's rows, read-only (nothing created, migrated or locked), [] without a store."""
    from blurbkit.store.results import read_rows

    path = args.store or args.runs_dir / "results.sqlite"
    return read_rows(path) if path.exists() else []


def print_plan(args: argparse.Namespace, label: str, runs: list[Any]) -> int:
    """`--plan`: the study's runs left, CPU-hours and wall time; nothing stored, nothing started."""
    from blurbkit.experiments.executors import machine_cores, pool_size
    from blurbkit.experiments.plan import plan_runs

    threads = args.threads_per_run or 1
    plan = plan_runs(runs, stored_rows(args), label, threads, machine_cores())
    print(plan.text(pool_size(threads, args.workers)))
    return 0


def report(outcome: Any, work: str) -> int:
    """A study's table and wall time on stdout, its files and failures on stderr; exit 1 if any run failed."""
    print(outcome.table)
    print(f"wall time: {outcome.seconds:.0f} s for {work}")
    for path in outcome.write():
        print(f"blurbkit: wrote {path}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if outcome.failures else 0


def seeds_text(datasets: list[str], seeds: int | None) -> str:
    """'10 seeds', or each dataset's protocol count when they differ: '10 seeds (biosses), 5 (chemprot)'."""
    from blurbkit.experiments.stability import seeds_for

    counts = {dataset: seeds_for(dataset, seeds) for dataset in datasets}
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} seeds"
    return "seeds " + ", ".join(f"{n} ({dataset})" for dataset, n in counts.items())


def study_setup(args: argparse.Namespace, study: Any,
                default_seeds: int | None) -> tuple[int | None, list[str], list[Any], str, str]:
    """What every study run starts from: seeds, datasets, variants, the model's store label and the budget name."""
    from blurbkit.experiments.ablation import select_variants
    from blurbkit.experiments.benchmark import budget_name, model_label, resolve_datasets
    from blurbkit.models.loading import resolve_model_dir

    seeds = default_seeds if args.seeds is None else args.seeds  # at least 1 by its argparse type
    executor_choice(args, default="local" if args.plan else None)  # --plan --workers N: the wall time on N
    datasets = resolve_datasets(args.datasets or list(study.datasets))
    variants = select_variants(study, args.variants)
    resolve_model_dir(args.model)
    budget = budget_name(args.quick, args)  # subsample flags name the budget, as benchmark's do: never "full"
    args.no_save_model = not args.save_models
    return seeds, datasets, variants, model_label(args.model), budget


def run_pretraining(args: argparse.Namespace) -> int:
    """Pretrain one preset under each setting at equal FLOPs (reused when finished), fine-tune every
    encoder on datasets x seeds through Benchmark, print and write the Table 2-shaped table."""
    from pathlib import Path

    from blurbkit.data.load import default_data
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments import pretraining as study
    from blurbkit.experiments.benchmark import budget_name, resolve_datasets
    from blurbkit.experiments.study_run import run_pretraining_study

    if args.model is not None:
        raise BlurbkitError("--model: study pretraining fine-tunes the encoders it pretrains; leave it out (--preset sets the size)")
    seeds = 3 if args.seeds is None else args.seeds  # at least 1 by its argparse type
    executor_choice(args)  # before hours of pretraining: a bad executor option is one line now
    datasets = resolve_datasets(args.datasets or list(study.DATASETS))
    settings = study.select_settings(args.variants)
    corpus = args.corpus or [str(Path(args.data or default_data()) / "pubmed_text")]
    budget = study.Budget(corpus=tuple(corpus), tokenizer=args.tokenizer, preset=args.preset, steps=args.pretrain_steps,
                          batch_size=args.pretrain_batch_size, max_length=args.pretrain_max_length, lr=args.pretrain_lr,
                          generator_size=args.generator_size, max_docs=args.pretrain_max_docs)
    label = budget_name(args.quick, args)
    args.no_save_model = not args.save_models

    def make_config(dataset: str, seed: int, model: Path):
        return study_config(args, dataset, seed, model=str(model))

    outcome = run_pretraining_study(budget, settings, datasets, seeds, make_config, lambda: grid_bench(args, "pretraining"),
                                    label, args.runs_dir, not args.no_progress, lambda line: print(line, file=sys.stderr))
    return report(outcome, "the work done now")
