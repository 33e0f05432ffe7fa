"""`blurbkit status`: what a runs directory holds now (stored and failed runs, runs in progress)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="stored and failed runs of a results store, and the runs in progress under a runs directory",
        description="Read-only, beside running sweeps: the store's runs counted per study, model and dataset, and "
        "every unfinished run directory under --runs-dir with the position its training process last reported "
        "(epoch, steps, latest dev score, time left), its last checkpoint, and whether that process still runs, "
        "stopped, or failed.",
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the runs and the store are (default: runs)")
    parser.add_argument("--store", type=Path, help="results store (default: RUNS_DIR/results.sqlite)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.status import failed_runs, live_claims, render, runs_in_flight, stored_counts

    runs_dir: Path = args.runs_dir
    if not runs_dir.is_dir():
        raise BlurbkitError("no runs directory here", path=runs_dir)
    store = args.store or runs_dir / "results.sqlite"
    if args.store is None and not store.is_file():
        store = None
    counts = stored_counts(store) if store is not None else []
    claims = live_claims(store) if store is not None else []
    failed = failed_runs(store) if store is not None else {}
    print(render(runs_dir, store, counts, runs_in_flight(runs_dir, failed), claims))
    return 0
