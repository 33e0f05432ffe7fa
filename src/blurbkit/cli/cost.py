"""`blurbkit cost`: the fine-tuning cost table (BioM-Transformers Table 3 setting) on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="measure fine-tuning cost per model: time per epoch, tokens/s, parameters, peak memory",
        description="Fine-tunes each model on the dataset in the BioM-Transformers Table 3 setting (batch 32, "
        "max length 128; the table reports 3 epochs) with blurbkit's engine and prints the time per epoch, "
        "tokens/s, parameters and peak memory on this machine, naming the hardware. With --max-train-examples "
        "a seeded slice is timed and the epoch time extrapolated (said in the table). Model names: a local "
        "encoder directory, 'minilm' (the embedded default) or a random architecture preset "
        "(bert-base-random, bert-large-random: randomly initialised, for timing only). Every row also goes to the "
        "results store, for `blurbkit report`.",
    )
    parser.add_argument("--models", help="comma-separated: minilm, bert-base-random, or model directories")
    parser.add_argument("--dataset", default="chemprot", help="dataset to fine-tune on (default chemprot, as the paper)")
    parser.add_argument("--data", help="prepared directory or raw source folder (default: $BLURBKIT_DATA or ../shared/data)")
    parser.add_argument("--max-train-examples", type=int, help="time a seeded slice of N train records and extrapolate")
    parser.add_argument("--epochs", type=int, default=3, help="epochs actually run (default 3, the paper's; 1 suffices "
                        "to time a slice)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="where cost-DATASET.md/.csv/.png go (default runs)")
    parser.add_argument("--store", type=Path, help="results store for one row per model (default OUT/results.sqlite)")
    parser.add_argument("--import-csv", type=Path, metavar="COST_CSV",
                        help="measure nothing: store the rows of an earlier cost table (its csv) into the store")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.cost_store import import_cost_csv, store_costs
    from blurbkit.experiments.cost_table import (
        cost_table,
        measure,
        resolve_cost_models,
        store_label_of,
        write_cost_report,
    )
    from blurbkit.fileio import check_writable
    from blurbkit.speed.machine import machine_info
    from blurbkit.store.results import check_store
    from blurbkit.tasks.registry import all_datasets, get_dataset

    spec = get_dataset(args.dataset)
    store = args.store or args.out / "results.sqlite"
    if args.import_csv is not None:
        # `blurbkit cost` names its table cost-DATASET.csv: a table of another dataset is not stored as --dataset's.
        named = args.import_csv.stem.removeprefix("cost-")
        if named != spec.name and named in all_datasets():
            raise BlurbkitError(f"{args.import_csv}: a cost table of {named!r}, not of --dataset {spec.name!r} "
                                f"(give --dataset {named})")
        rows = import_cost_csv(args.import_csv, spec.name, store)
        print(f"stored {len(rows)} cost rows of {spec.name} ({', '.join(r['model'] for r in rows)}) in {store}")
        return 0
    if args.models is None:
        raise BlurbkitError("cost: --models is needed (or --import-csv to store an earlier table's rows)")
    if args.epochs < 1:
        raise BlurbkitError(f"--epochs must be at least 1 (got {args.epochs})")
    if args.max_train_examples is not None and args.max_train_examples < 1:
        raise BlurbkitError(f"--max-train-examples must be at least 1 (got {args.max_train_examples})")
    models = resolve_cost_models(args.models)  # bad names are refused before anything is created
    check_writable(args.out / f"cost-{spec.name}.md", "cost table")
    check_store(store)  # a store that cannot take the rows fails now, not after the timing
    machine = machine_info()
    rows = []
    for model in models:
        print(f"blurbkit: cost: timing {model.label} on {spec.name}", file=sys.stderr)
        rows.append(measure(model, spec.name, args.data, args.max_train_examples, args.epochs, progress=not args.no_progress))
    table = cost_table(spec.name, rows, machine)
    print(table)
    for path in write_cost_report(args.out, f"cost-{spec.name}", table, rows, machine):
        print(f"blurbkit: wrote {path}", file=sys.stderr)
    store_costs(store, spec.name, [store_label_of(m) for m in models], rows, machine)
    print(f"blurbkit: stored {len(rows)} rows in {store}", file=sys.stderr)
    return 0
