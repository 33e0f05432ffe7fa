"""A training run's position, readable from another process.

A sweep's worker runs silently (its driver prints one line per finished run), so a run of hours
showed nothing between its start and its end, and the sweep's ETA stayed "?" until a first run had
finished. While it trains, a run with a directory keeps ``RUN_DIR/.progress.json`` up to date (at
every epoch's start and end and at most every few seconds between, written whole and renamed into
place): optimizer steps done and in all, epoch, the latest dev score, the training rate of this
process, and the process (pid, host). The driver reads it for its live bar and its ETA, `blurbkit
status` for its table. The finished run directory replaces RUN_DIR whole, so the file is gone when
the run is done; a run that stopped (killed, or failed on a NaN loss) leaves it as its last known
position, which may be ahead of its last checkpoint. The train+dev final model's second schedule
reports from its own step 0.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from blurbkit.fileio import atomic_write
from blurbkit.store.results import pid_alive

FILE_NAME = ".progress.json"
FORMAT = "blurbkit-progress/1"
EVERY = 5.0  # s between writes: often enough for a 2 s poll of the driver, rare enough to cost nothing


def is_progress_entry(name: str) -> bool:
    """The progress file or a temporary sibling of it (a kill while it was written)."""
    return name == FILE_NAME or (name.startswith(f".{FILE_NAME}.") and name.endswith(".tmp"))


@dataclass(frozen=True)
class RunProgress:
    steps: int  # optimizer steps done (a resumed run's include its earlier processes')
    total: int  # optimizer steps of the whole schedule
    epoch: int
    epochs: int
    dev: float | None  # the latest dev score, if an epoch has been scored
    rate: float | None  # optimizer steps per second in this process, dev evaluation included
    updated: float  # time.time() of the write
    pid: int = 0  # the training process, on `host`
    host: str = ""

    def alive(self) -> bool | None:
        """Whether the training process still runs: known on its own host, None elsewhere."""
        if not self.pid or self.host != socket.gethostname():
            return None
        return pid_alive(self.pid)

    @property
    def fraction(self) -> float:
        return min(1.0, self.steps / self.total) if self.total else 0.0

    def seconds_left(self, now: float | None = None) -> float | None:
        """Training time to the end of the schedule at this process's rate, from `now` (default: the
        time of the report); early stopping may end it sooner, scoring test comes after it."""
        if not self.rate:
            return None
        since = 0.0 if now is None else max(0.0, now - self.updated)
        return max(0.0, (self.total - self.steps) / self.rate - since)

    def describe(self) -> str:
        dev = f" dev {100 * self.dev:.2f}" if self.dev is not None else ""
        return f"ep {self.epoch}/{self.epochs} {100 * self.fraction:.0f}%{dev}"


class Heartbeat:
    """Writes a run's RunProgress; `step` is cheap enough to call after every optimizer step."""

    def __init__(self, run_dir: Path, every: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path, self.every, self.clock = run_dir / FILE_NAME, EVERY if every is None else every, clock
        self.total = self.epochs = 0
        self.dev: float | None = None
        self._start: tuple[float, int] | None = None  # (time, steps) when this process started training
        self._written = -math.inf

    def begin(self, steps: int, total: int, epoch: int, epochs: int) -> None:
        """The schedule, and where this process starts in it (a resumed run: past its first step)."""
        self.total, self.epochs, self._start = total, epochs, (self.clock(), steps)
        self.step(steps, epoch, force=True)

    def step(self, steps: int, epoch: int, force: bool = False) -> None:
        now = self.clock()
        if self._start is None:
            self._start = (now, steps)
        if not force and now - self._written < self.every:
            return
        began, steps0 = self._start
        rate = (steps - steps0) / (now - began) if now > began and steps > steps0 else None
        progress = RunProgress(steps, self.total, epoch, self.epochs, self.dev, rate, now, os.getpid(), socket.gethostname())
        try:
            with atomic_write(self.path) as handle:
                json.dump({"format": FORMAT, **asdict(progress)}, handle)
        except OSError:  # a full disk must not stop training: the checkpoint and the run say so
            return
        self._written = now

    def scored(self, steps: int, epoch: int, dev: float) -> None:
        """An epoch's dev score: written at once."""
        self.dev = dev
        self.step(steps, epoch, force=True)


def read_progress(run_dir: Path | None) -> RunProgress | None:
    """The run's last written position, or None (no file yet, finished, or unreadable)."""
    if run_dir is None:
        return None
    try:
        data = json.loads((run_dir / FILE_NAME).read_text(encoding="utf-8"))
        if data.pop("format", None) != FORMAT:
            return None
        progress = RunProgress(**data)
    except (OSError, ValueError, TypeError, AttributeError):  # missing, torn, or not a progress object
        return None
    return progress if _valid(progress) else None


def _valid(progress: RunProgress) -> bool:
    """Counts are non-negative integers, times finite, a rate positive: a file another program
    wrote (or NaN, which JSON readers accept) must not reach a driver's arithmetic."""
    def count(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    return (all(count(v) for v in (progress.steps, progress.total, progress.epoch, progress.epochs, progress.pid))
            and number(progress.updated) and (progress.dev is None or number(progress.dev))
            and (progress.rate is None or (number(progress.rate) and progress.rate > 0))
            and isinstance(progress.host, str))
