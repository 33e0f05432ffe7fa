"""Shared driver of the benchmarks/ablation_*.py scripts: one `blurbkit ablate` study on a CPU budget.

Runs go to $BLURBKIT_RUNS (default /tmp/blurbkit_ablation_runs) with their results store, so an
interrupted measurement resumes where it stopped; the table (Markdown + CSV) and a JSON of the
budget are copied to benchmarks/results/ablation_<study>.{md,csv,json}.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from blurbkit.fileio import write_json, write_text

RUNS = Path(os.environ.get("BLURBKIT_RUNS", "/tmp/blurbkit_ablation_runs"))
RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if SHARED_DATA.is_dir():  # so the scripts run from any directory
    os.environ.setdefault("BLURBKIT_DATA", str(SHARED_DATA))


def cpu_class() -> dict[str, object]:
    """The CPU class every timing is measured on: its model and the dtypes it runs natively (bf16 or fp32 only)."""
    from blurbkit.runtime.capability import capability

    found = capability()
    return {"cpu": found.cpu.model, "native_dtypes": list(found.native_dtypes)}


def budget_label(budget: dict[str, int]) -> str:
    """The budget's name in the store and the report files, as `blurbkit ablate` names it."""
    from types import SimpleNamespace

    from blurbkit.experiments.benchmark import budget_name

    return budget_name(False, SimpleNamespace(**budget))


def portable_path(arg: str) -> str:
    """`arg` as a result file records it: a path inside $BLURBKIT_RUNS (when set) as `$BLURBKIT_RUNS/...`,
    so results name no machine's folders; any other argument as it is."""
    runs = os.environ.get("BLURBKIT_RUNS")
    if not runs or not arg.startswith(("/", ".", runs)):
        return arg
    root, path = Path(runs).resolve(), Path(arg).resolve()
    if path == root or root in path.parents:
        return str(Path("$BLURBKIT_RUNS") / path.relative_to(root))
    return arg


def run_study(study: str, datasets: list[str], variants: list[str], seeds: int, budget: dict[str, int],
              threads: int = 1, extra: list[str] | None = None, tag: str = "") -> int:
    """One `blurbkit ablate` call; results go to benchmarks/results/ablation_<study>[_<tag>].*

    `tag` keeps studies that run datasets at different budgets in separate result files.
    """
    import torch

    torch.set_num_threads(threads)
    from blurbkit.cli.main import main

    argv = ["ablate", "--study", study, "--datasets", ",".join(datasets), "--variants", ",".join(variants),
            "--seeds", str(seeds), "--runs-dir", str(RUNS), "--no-progress", *(extra or [])]
    for key, value in budget.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    started = time.perf_counter()
    code = main(argv)
    name = f"ablation-{study}-{budget_label(budget)}"
    result = f"ablation_{study}_{tag}" if tag else f"ablation_{study}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if code != 0:  # the tables under RUNS may be an earlier call's: publish nothing but this call's record
        print(f"ablate exited {code}: {RESULTS / result}.md/csv left as they were", file=sys.stderr)
    for suffix in ("md", "csv") if code == 0 else ():
        if (RUNS / f"{name}.{suffix}").is_file():
            write_text(RESULTS / f"{result}.{suffix}", (RUNS / f"{name}.{suffix}").read_text(encoding="utf-8"))
    shown = [portable_path(arg) for arg in argv]
    info = {"argv": shown, "exit_code": code, "seconds_this_call": round(time.perf_counter() - started, 1),
            "budget": budget, "threads": threads, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            **cpu_class()}
    write_json(RESULTS / f"{result}.json", info)
    return code
