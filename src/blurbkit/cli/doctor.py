"""`blurbkit doctor`: what this machine runs, and whether the main job can run here.

  blurbkit doctor [--data DIR] [--model DIR] [--runs-dir runs] [--peaks [SECONDS]]

Prints the machine (torch, device, CPU and its matmul flags, native dtypes, threads, allocator, memory),
checks the model (found, config loads), the BLURB data folder (13 datasets, their files present
and readable; sha256 against a prepared manifest where there is one) and the free disk space
where runs and the cache go. --peaks also times a matmul in each native dtype: how much faster bf16
is than fp32 on this CPU (2x or 4x and more, by CPU class). Every problem comes with the command or step that fixes it.
Exit 0 when `blurbkit benchmark --quick --data DIR` has everything it needs, 1 otherwise; never a
traceback (a check that breaks is reported as a problem).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from blurbkit.cli.argtypes import positive_float

if TYPE_CHECKING:
    from blurbkit.doctor import Check


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="what this machine runs, and whether the model, data and disk for the main job are there",
        description="Report the hardware blurbkit sees (native dtypes, flags, threads, allocator) and check the "
        "model, the BLURB data folder and free disk space; exit 0 when `blurbkit benchmark --quick` can run.",
    )
    parser.add_argument("--data", help="data folder to check (default: $BLURBKIT_DATA, else ../shared/data)")
    parser.add_argument("--model", help="model directory to check (default: the embedded MiniLM-L6-H384)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs go (default: runs)")
    parser.add_argument("--peaks", type=positive_float, nargs="?", const=2.0, metavar="SECONDS",
                        help="also time the matmul peak of each native dtype, SECONDS each (default 2): "
                        "the bf16 speed-up over fp32 this CPU allows")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.doctor import run_checks
    from blurbkit.doctor.data import data_folder

    data = data_folder(args.data)
    checks = run_checks(data, args.model, args.runs_dir, peak_seconds=args.peaks)
    _print(checks, data, args.model)
    return 1 if any(c.status == "problem" for c in checks) else 0


# -- output ---------------------------------------------------------------------------------------

MARK = {"ok": "ok", "problem": "!!", "warn": "~~", "note": "  "}


def _print(checks: list[Check], data: Path, model: str | None) -> None:
    section = None
    for check in checks:
        if check.section != section:
            section = check.section
            print(section)
        line = f"  {MARK[check.status]} {check.name:<14} {check.detail}"
        print(line.rstrip())
        if check.fix and check.status != "ok":
            print(f"     {'':<14} fix: {check.fix}")
    problems = [c for c in checks if c.status == "problem"]
    job = f"blurbkit benchmark --quick --data {data}" + (f" --model {model}" if model else "")
    if problems:
        print(f"\n{len(problems)} problem(s): `{job}` cannot run as is.")
        for check in problems:
            label = check.name if check.section in check.name else f"{check.section} {check.name}"
            print(f"  - {label}: {check.fix}")
    else:
        print(f"\nready: `{job}` has what it needs.")
    sys.stdout.flush()
