"""`blurbkit store export|merge`: carry runs between results stores (machines that share no store)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "store", help="export a results store's runs as JSON lines; merge stores or exports into one",
        description="For sweeps run where no store was shared (one store per batch-queue task, machines that do not "
        "keep their disk): export the runs of a store as JSON lines, merge stores or exports into one store, then "
        "re-run the same benchmark/ablate command on it: it trains only the runs none of them holds.",
    )
    sub = parser.add_subparsers(dest="store_command", metavar="ACTION")

    export = sub.add_parser("export", help="a store's runs as JSON lines (one run a line, every column)")
    export.add_argument("--store", type=Path, default=Path("runs/results.sqlite"),
                        help="results store to read (default: runs/results.sqlite)")
    export.add_argument("--out", type=Path, required=True, help="JSON-lines file to write")
    export.add_argument("--study", help="only this study's runs (benchmark, protocol, stability, ...; `blurbkit status` lists a store's)")
    export.add_argument("--dataset", help="only this dataset's runs")
    export.add_argument("--no-run-dirs", action="store_true",
                        help="leave out where the runs' directories are (paths of this machine; for exports that travel)")
    export.set_defaults(func=run_export)

    merge = sub.add_parser("merge", help="add the runs of stores or exports to one store")
    merge.add_argument("sources", nargs="+", type=Path, help="results stores (.sqlite) or `store export` files")
    merge.add_argument("--into", type=Path, required=True, help="the store that receives them (created if absent)")
    merge.add_argument("--relabel-model", metavar="OLD=NEW", action="append", default=[],
                       help="store the runs of model OLD as model NEW (a model directory at another path here); repeatable")
    merge.set_defaults(func=run_merge)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_export(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import check_writable, write_jsonl
    from blurbkit.store.results import read_rows
    from blurbkit.store.transfer import export_records

    if args.out.resolve() == args.store.resolve():
        raise BlurbkitError("--out is the store itself; name another file", path=args.out)
    check_writable(args.out, "--out", file=True)
    stored = read_rows(args.store)
    rows = [row for row in stored if args.study in (None, row["study"]) and args.dataset in (None, row["dataset"])]
    if not rows:
        which = " and ".join(f"{name} {value!r}" for name, value in (("study", args.study), ("dataset", args.dataset)) if value)
        here = "; ".join(f"{plural} here: " + ", ".join(sorted({row[name] for row in stored}))
                         for name, plural, value in (("study", "studies", args.study), ("dataset", "datasets", args.dataset))
                         if value and stored)
        raise BlurbkitError(f"no runs{' of ' + which if which else ''} in the store{' (' + here + ')' if here else ''}; "
                            "nothing written", path=args.store)
    if args.no_run_dirs:
        rows = [dict(row, run_dir=None) for row in rows]
    count = write_jsonl(args.out, export_records(rows, args.store))
    failed = sum(row["status"] != "ok" for row in rows)
    print(f"blurbkit: exported {count} run(s) ({failed} failed) from {args.store} to {args.out}")
    return 0


def _relabels(values: list[str]) -> list[tuple[str, str]]:
    from blurbkit.errors import BlurbkitError
    from blurbkit.store.labels import store_label

    pairs = []
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old or not new:
            raise BlurbkitError(f"--relabel-model {value!r}: expected OLD=NEW")
        # NEW as this machine names it (an absolute path); "default" on either side is the embedded model
        pairs.append((store_label(old) if old == "default" else old, store_label(new)))
    return pairs


def run_merge(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.store.transfer import merge_into, read_runs, relabel

    pairs = _relabels(args.relabel_model)
    into = args.into.resolve()
    for source in args.sources:
        if source.resolve() == into:
            raise BlurbkitError("is both a source and --into; name another store to merge into", path=source)
    # Every source is read and checked before the store is touched: a bad line stores nothing.
    rows = [row for source in args.sources for row in read_runs(source)]
    for old, new in pairs:
        if not relabel(rows, old, new):
            raise BlurbkitError(f"--relabel-model: no run of model {old!r} in the sources")
    counts = merge_into(args.into, rows)
    print(f"blurbkit: merged {len(args.sources)} source(s) into {args.into}: {counts.summary()}")
    return 0
