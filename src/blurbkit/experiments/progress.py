"""A sweep's progress: one line per finished run, and a live bar (done / failed / running / left)
whose ETA comes from the measured run times of this sweep (per dataset, else overall)."""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict

from tqdm.auto import tqdm


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
        if seconds is not None:
            self.times[dataset].append(seconds)
        self.bar.update(1)

    def add(self, dataset: str, runs: int) -> None:
        """Runs that became part of this sweep while it ran (a follow-up stage)."""
        self.expected[dataset] = self.expected.get(dataset, 0) + runs
        self.bar.total = sum(self.expected.values())

    def drop(self, dataset: str, runs: int) -> None:
        self.expected[dataset] -= runs
        self.bar.total = sum(self.expected.values())

    def eta(self, slots: int) -> float | None:
        everything = [t for times in self.times.values() for t in times]
        if not everything:
            return None
        overall = statistics.fmean(everything)
        left = sum((self.expected[d] - self.settled[d]) * statistics.fmean(self.times[d] or [overall]) for d in self.expected)
        return left / max(1, slots)

    def show(self, running: int, slots: int) -> None:
        left = self.bar.total - self.done - self.failed
        eta = self.eta(slots)
        self.bar.set_postfix_str(f"done {self.done} failed {self.failed} running {running} left {left} "
                                 f"ETA {clock(eta) if eta is not None else '?'}", refresh=True)

    def close(self) -> None:
        self.bar.close()
