"""`blurbkit prepare`: read the raw distributions, write canonical JSONL + manifest.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from blurbkit.cli.argtypes import names_arg
from blurbkit.data.readers.base import ReadOptions
from blurbkit.errors import BlurbkitError


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """The ReadOptions flags, shared by the data commands."""
    parser.add_argument(
        "--pico-train-from-dev",
        type=int,
        metavar="N",
        help="EBM PICO train is not distributed: use the first N dev abstracts as train and the rest as dev "
        "(a LOCAL DEVIATION from BLURB, recorded in the manifest)",
    )
    parser.add_argument(
        "--fold", type=int, metavar="K", help="AIMed: test = fold K, dev = fold K+1 (default 0)"
    )


def read_options(args: argparse.Namespace) -> ReadOptions:
    return ReadOptions(pico_train_from_dev=args.pico_train_from_dev, fold=0 if args.fold is None else args.fold)


def check_options_are_read(args: argparse.Namespace, names: list[str] | None) -> None:
    """A read option none of the datasets reads is refused, as finetune refuses it (it would only be
    recorded in the manifest as if it had changed something)."""
    from blurbkit.data.prepare import select

    specs = select(names)
    for flag, name in (("--pico-train-from-dev", "pico_train_from_dev"), ("--fold", "fold")):
        if getattr(args, name) is not None and not any(name in ReadOptions().for_reader(s.reader) for s in specs):
            listed = ", ".join(s.name for s in specs[:5]) + (", ..." if len(specs) > 5 else "")
            raise BlurbkitError(f"{flag}: none of the datasets to prepare reads it ({listed})")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="raw dataset files -> canonical JSONL + manifest.json",
        description="Read every dataset's raw files (as distributed) and write OUT/{dataset}/{split}.jsonl "
        "and OUT/manifest.json with measured vs published counts, notes, source sha256 and options.",
    )
    parser.add_argument(
        "--source", type=Path, help="raw data folder (default: $BLURBKIT_DATA or ../shared/data)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (replaced as a whole)")
    parser.add_argument(
        "--datasets", type=names_arg, metavar="A,B", help="only these datasets (default: all registered)"
    )
    add_read_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.data.load import default_data
    from blurbkit.data.prepare import format_table, prepare

    source = args.source
    if source is None:
        try:
            source = default_data()
        except BlurbkitError:
            source = None  # user datasets (with their own `source`) still prepare; built-ins are skipped
    check_options_are_read(args, args.datasets)
    manifest = prepare(source, args.out, args.datasets, read_options(args))
    print()
    print(format_table(manifest))
    print(f"\nwrote {args.out / 'manifest.json'}")
    return 0
