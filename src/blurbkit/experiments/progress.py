"""A sweep's progress: one line per finished run, and a live bar (done / failed / running / left,
the runs in flight with their epoch and share of steps) whose ETA comes from the measured run times
of this sweep (per dataset, else overall) and from the runs in flight: their training rate gives
their time left and, before any run of a dataset has finished, the time of its next ones."""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from blurbkit.train.heartbeat import RunProgress

SHOWN_LIVE = 2  # runs in flight described in the bar; the rest are counted


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class LiveRun:
    """A run in flight whose worker has reported its position (train/heartbeat.py)."""

    dataset: str
    label: str
    progress: RunProgress


class SweepProgress:
    def __init__(self, expected: dict[str, int], enabled: bool = True) -> None:
        self.expected = dict(expected)  # dataset -> runs of this sweep (shrinks when a test phase is dropped)
        self.settled: dict[str, int] = defaultdict(int)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.done = self.failed = 0
        self.bar = tqdm(total=sum(self.expected.values()), unit="run", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]{postfix}")

    def line(self, text: str) -> None:
        if self.bar.disable:
            print(text, file=sys.stderr, flush=True)
        else:
            self.bar.write(text, file=sys.stderr)

    def settle(self, dataset: str, ok: bool, seconds: float | None = None) -> None:
        """A run stored (ok) or recorded as failed; `seconds` when it ran in this sweep."""
        self.settled[dataset] += 1
        self.done += ok
        self.failed += not ok
        if seconds is not None and ok:  # a failed run's time (often a crash at start) says little of the others'
            self.times[dataset].append(seconds)
        self.bar.update(1)

    def add(self, dataset: str, runs: int) -> None:
        """Runs that became part of this sweep while it ran (a follow-up stage)."""
        self.expected[dataset] = self.expected.get(dataset, 0) + runs
        self.bar.total = sum(self.expected.values())

    def drop(self, dataset: str, runs: int) -> None:
        self.expected[dataset] -= runs
        self.bar.total = sum(self.expected.values())

    def eta(self, slots: int, live: Sequence[LiveRun] = (), now: float | None = None) -> float | None:
        """Seconds to the end: the work left (runs in flight at their own rate, the others at their
        dataset's mean run time, measured or, before one has finished, projected from the training
        rate of a run in flight, which leaves out start-up and test scoring) spread over the slots,
        and never less than the longest run in flight still needs, nor than a queued run takes (it
        has not started)."""
        now = time.time() if now is None else now
        projected: dict[str, list[float]] = defaultdict(list)  # whole-schedule training times of runs in flight
        in_flight: dict[str, int] = defaultdict(int)
        remaining = []
        for run in live:
            left = run.progress.seconds_left(now)
            if left is None:
                continue
            remaining.append(left)
            in_flight[run.dataset] += 1
            projected[run.dataset].append(run.progress.total / run.progress.rate)
        per_dataset = {d: self.times[d] or projected[d] for d in set(self.times) | set(projected)}
        per_dataset = {d: times for d, times in per_dataset.items() if times}
        if not per_dataset:
            return None
        measured = [t for times in self.times.values() for t in times]
        overall = statistics.fmean(measured or [t for times in projected.values() for t in times])
        waiting = {d: max(0, self.expected[d] - self.settled[d] - in_flight[d]) for d in self.expected}
        mean = {d: statistics.fmean(per_dataset[d]) if d in per_dataset else overall for d in self.expected}
        queued = sum(waiting[d] * mean[d] for d in self.expected)
        longest = max([*remaining, *(mean[d] for d in self.expected if waiting[d])], default=0.0)
        return max((sum(remaining) + queued) / max(1, slots), longest)

    def show(self, running: int, slots: int, live: Sequence[LiveRun] = ()) -> None:
        left = self.bar.total - self.done - self.failed
        eta = self.eta(slots, live)
        text = f"done {self.done} failed {self.failed} running {running} left {left} ETA {clock(eta) if eta is not None else '?'}"
        if live:
            described = [f"{run.label}: {run.progress.describe()}" for run in live[:SHOWN_LIVE]]
            more = f", +{len(live) - SHOWN_LIVE} more" if len(live) > SHOWN_LIVE else ""
            text += " | " + ", ".join(described) + more
        self.bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        self.bar.close()
