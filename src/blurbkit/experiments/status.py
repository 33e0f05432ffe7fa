"""What a runs directory holds now, for `blurbkit status`: the results store's runs counted per
study, model and dataset (stored / failed), and every run still in a RUN_DIR (training now, or
stopped part-way: a re-run of its command continues it from its checkpoint) with the position it last
reported (train/heartbeat.py). Read-only: safe beside the sweeps that write there."""

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.store.results import FAILED, claim_is_live, read_claims, read_rows
from blurbkit.train.heartbeat import FILE_NAME, RunProgress, read_progress

QUIET_AFTER = 1800.0  # s without a report before a run on another host is called "quiet" (a long dev evaluation is silent)


@dataclass(frozen=True)
class RunInFlight:
    run_dir: Path
    progress: RunProgress

    def state(self) -> str:
        alive = self.progress.alive()
        if alive is None:
            return "quiet" if time.time() - self.progress.updated > QUIET_AFTER else "training"
        return "training" if alive else "stopped"


def runs_in_flight(runs_dir: Path) -> list[RunInFlight]:
    """Every run directory under `runs_dir` whose run has not finished, by path."""
    found = []
    for path in sorted(runs_dir.rglob(FILE_NAME)):
        progress = read_progress(path.parent)
        if progress is not None:
            found.append(RunInFlight(path.parent, progress))
    return found


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
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds / 3600:.1f} h ago"


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
    lines.append("| run directory | state | position | time left | last report |")
    lines.append("|---|---|---|---|---|")
    now = time.time()
    for run in flight:
        state, progress = run.state(), run.progress
        left = progress.seconds_left() if state == "training" else None
        where = f"pid {progress.pid} on {progress.host}" if progress.pid else "unknown process"
        lines.append(f"| {run.run_dir.relative_to(runs_dir)} | {state} | {progress.describe()} (step {progress.steps} of "
                     f"{progress.total}) | {clock(left) if left is not None else '-'} | {ago(now - progress.updated)}, {where} |")
    if any(run.state() == "stopped" for run in flight):
        lines.append("")
        lines.append("stopped: the process is gone; running its command again continues the run from its last checkpoint")
    return "\n".join(lines)
