"""What a runs directory holds now, for `blurbkit status`: the results store's runs counted per
study, model and dataset (stored / failed), the runs live drivers have claimed, and every run
directory whose run has not finished, with the position it last reported (train/heartbeat.py), its
last checkpoint, and its state: training, quiet (no report for a long time), stopped (its process
is gone: a re-run continues from the checkpoint, or starts over without one) or failed (so stored).
Read-only: safe beside the sweeps that write there."""

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.experiments.cost_report import duration
from blurbkit.store.results import FAILED, claim_is_live, read_claims, read_rows
from blurbkit.train.checkpoint import saved_steps
from blurbkit.train.heartbeat import FILE_NAME, RunProgress, read_progress

QUIET_AFTER = 1800.0  # s without a report before a run is called "quiet" (a long dev evaluation reports nothing)


@dataclass(frozen=True)
class RunInFlight:
    run_dir: Path
    progress: RunProgress
    checkpoint_steps: int | None  # where a re-run would continue from (None: no checkpoint, it starts over)
    failed: str | None = None  # the store's error, when the store holds this run as failed

    def state(self, now: float | None = None) -> str:
        quiet = (now or time.time()) - self.progress.updated > QUIET_AFTER  # also a pid that was reused meanwhile
        alive = self.progress.alive()
        if self.failed is not None:
            # stored as failed, but a process on this host reports from it now: a later drive's retry
            return "training again" if alive is True and not quiet else "failed"
        if alive is False:
            return "stopped"
        return "quiet" if quiet else "training"


def _leftover(path: Path, root: Path) -> bool:
    """Inside a temporary or replaced copy of a run directory (fileio.atomic_dir)."""
    return any(part.startswith(".") and part.endswith((".tmp", ".old")) for part in path.relative_to(root).parts)


def runs_in_flight(runs_dir: Path, failed: dict[str, str] | None = None) -> list[RunInFlight]:
    """Every run directory under `runs_dir` whose run has not finished, by path; `failed` maps the
    resolved run directories of the store's failed runs to their errors."""
    failed = failed or {}
    found = []
    for path in sorted(runs_dir.rglob(FILE_NAME)):
        if _leftover(path.parent, runs_dir):
            continue
        progress = read_progress(path.parent)
        if progress is not None:
            found.append(RunInFlight(path.parent, progress, saved_steps(path.parent),
                                     failed.get(str(path.parent.resolve()))))
    return found


def failed_runs(store: Path) -> dict[str, str]:
    """Resolved run directory -> error, for the store's failed runs."""
    return {str(Path(row["run_dir"]).resolve()): row.get("error") or "failed"
            for row in read_rows(store) if row["status"] == FAILED and row.get("run_dir")}


def stored_counts(store: Path) -> list[dict[str, Any]]:
    """Rows of (study, model, dataset, ok, failed), in the store's order of first appearance."""
    counts: dict[tuple[str, str, str], Counter] = {}
    for row in read_rows(store):
        key = (row["study"], Path(row["model"]).name or row["model"], row["dataset"])
        counts.setdefault(key, Counter())[row["status"] == FAILED] += 1
    return [{"study": s, "model": m, "dataset": d, "ok": c[False], "failed": c[True]} for (s, m, d), c in counts.items()]


def live_claims(store: Path) -> list[dict[str, Any]]:
    """Runs that a live driver has claimed: training now, or waiting for a worker."""
    host, now = socket.gethostname(), time.time()
    return [claim for claim in read_claims(store) if claim_is_live(claim, host, now)]


def ago(seconds: float) -> str:
    return f"{duration(max(0.0, seconds))} ago"


def render(runs_dir: Path, store: Path | None, counts: list[dict[str, Any]], flight: list[RunInFlight],
           claims: list[dict[str, Any]] = ()) -> str:
    from blurbkit.experiments.progress import clock

    lines = []
    if store is None:
        lines.append(f"no results store in {runs_dir}")
    else:
        ok, failed = sum(r["ok"] for r in counts), sum(r["failed"] for r in counts)
        lines.append(f"results store {store}: {ok + failed} runs ({ok} stored, {failed} failed)")
        if counts:
            lines.append("")
            lines.append("| study | model | dataset | stored | failed |")
            lines.append("|---|---|---|---|---|")
            lines += [f"| {r['study']} | {r['model']} | {r['dataset']} | {r['ok']} | {r['failed']} |" for r in counts]
        if claims:
            holders = sorted({f"pid {c['pid']} on {c['host']}" for c in claims})
            lines.append("")
            lines.append(f"claimed by live drivers: {len(claims)} run(s) ({', '.join(holders)}), training or waiting for a worker")
    lines.append("")
    if not flight:
        lines.append(f"no run in progress under {runs_dir}")
        return "\n".join(lines)
    lines.append(f"runs not finished under {runs_dir}: {len(flight)}")
    lines.append("")
    lines.append("| run directory | state | position | time left | last checkpoint | last report |")
    lines.append("|---|---|---|---|---|---|")
    now = time.time()
    notes = set()
    for run in flight:
        state, progress = run.state(now), run.progress
        left = progress.seconds_left(now) if state == "training" else None
        where = f"pid {progress.pid} on {progress.host}" if progress.pid else "unknown process"
        saved = f"step {run.checkpoint_steps}" if run.checkpoint_steps is not None else "none"
        lines.append(f"| {run.run_dir.relative_to(runs_dir)} | {state} | {progress.describe()} (step {progress.steps} of "
                     f"{progress.total}) | {clock(left) if left is not None else '-'} | {saved} | {ago(now - progress.updated)}, {where} |")
        if state == "failed":
            notes.add(f"failed: stored as failed ({run.failed}); the next run of its sweep tries it again")
        elif state == "stopped":
            notes.add("stopped with a checkpoint: a re-run of its benchmark/ablate continues it from there (finetune: with --resume)"
                      if run.checkpoint_steps is not None else "stopped with no checkpoint: a re-run starts it over")
    if notes:
        lines.append("")
        lines += sorted(notes)
    lines.append("")
    lines.append("time left: the training schedule at the run's own rate (test scoring and saving come after it)")
    return "\n".join(lines)
