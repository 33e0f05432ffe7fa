"""What every driver of runs on an executor shares (experiments/sweep.py, stilt_sweep.py and
grid_sweep.py): the loop that waits for outcomes and keeps the claims of the runs in flight alive, a
crashed run tried again up to `retries` times (not a BlurbkitError: bad input fails the same way
again), a run that failed for good stored as failed with its error, and the claims of unfinished runs
released however the driver stops (Ctrl-C included). Workers only train; the driver alone writes the
results store."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.executors import FORWARDED_ENV, Executor, RunOutcome, RunTask, unpack_dir
from blurbkit.experiments.progress import LiveRun, SweepProgress
from blurbkit.experiments.run_records import finished_run
from blurbkit.store.results import ResultsStore
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.heartbeat import read_progress
from blurbkit.train.provenance import blurbkit_commit

POLL = 2.0  # s between looks at the executor (progress bar, claims)
CLAIM_BEAT = 30.0  # s between heartbeats of the claims of runs in flight


@dataclass
class Job:
    task: RunTask
    dataset: str  # the progress bar's group, and the metric of a failed row
    attempts: int = 0
    payload: Any = None  # the driver's own: a search flag, a StiltRun, a variant
    submitted: float = field(default_factory=time.time)  # a progress file older than this is a killed earlier run's


def forwarded_env() -> dict[str, str]:
    """The driver's environment a worker must see (Ray workers do not inherit it)."""
    return {name: value for name in FORWARDED_ENV if (value := os.environ.get(name))}


def resumable(out: Path | None, force: bool, commit: str) -> tuple[dict[str, Any], str] | None:
    """A run directory that finished before the driver stopped but was not stored: its metrics and
    the commit it ran at (stored from there instead of training again), or None."""
    metrics = None if force else finished_run(out)
    if metrics is None:
        return None
    return metrics, metrics.pop("_blurbkit_commit", None) or commit


class Driver:
    """Submit jobs, settle their outcomes; subclasses say what a success or a final failure means.
    A subclass has `store`, `executor` and `retries`, and calls `begin` when its run starts."""

    store: ResultsStore
    executor: Executor
    retries: int

    def begin(self, bar: SweepProgress) -> None:
        self.bar = bar
        self.env = forwarded_env()
        self.commit = blurbkit_commit()
        self.jobs: dict[str, Job] = {}  # digest -> job in flight (claimed)
        self.failures: list[str] = []  # every run that failed in this drive

    def submit(self, job: Job) -> None:
        self.jobs[job.task.key.digest()] = job
        self.executor.submit(job.task)

    def refill(self) -> None:
        """Submit what may start now; drivers that submit everything up front need not."""

    def pending(self) -> bool:
        """Runs not in flight that this driver still waits for (another driver's, for one)."""
        return False

    def drive(self, start: Callable[[], None]) -> None:
        """`start` schedules the first jobs; then until no job is in flight or pending. However it
        ends, the workers stop first and then the claims of jobs still in flight are released (a
        claim freed under a live worker would let another driver train into the same directory)."""
        try:
            start()
            beat = time.monotonic()
            while self.jobs or self.pending():
                if not self.jobs:
                    time.sleep(POLL)
                for outcome in self.executor.wait(POLL):
                    self.settle(outcome)
                self.refill()
                if time.monotonic() - beat > CLAIM_BEAT:
                    self.store.touch([job.task.key for job in self.jobs.values()])
                    beat = time.monotonic()
                self.bar.show(self.executor.running(), self.executor.slots, self.live())
        finally:
            self.executor.close()
            for job in self.jobs.values():
                self.store.release(job.task.key)
            self.jobs.clear()
            self.bar.close()

    def live(self) -> list[LiveRun]:
        """The jobs in flight whose worker reports its position in the shared run directory (not in
        ship mode: that run directory is in the worker's own temporary folder)."""
        runs = []
        for job in self.jobs.values():
            if job.task.ship:
                continue
            progress = read_progress(job.task.config.out)
            if progress is not None and progress.updated >= job.submitted:
                runs.append(LiveRun(job.dataset, job.task.label, progress))
        return runs

    def settle(self, outcome: RunOutcome) -> None:
        job = self.jobs.get(outcome.digest)
        if job is None:
            return
        job.attempts += 1
        self.observed(job, outcome)
        if outcome.metrics is None and outcome.retryable and job.attempts <= self.retries:
            self.bar.line(f"blurbkit: {job.task.label}: {outcome.error}; retrying ({job.attempts + 1} of {self.retries + 1})")
            job.submitted = time.time()  # the crashed attempt's progress file is not this attempt's
            self.executor.submit(job.task)
            return
        del self.jobs[outcome.digest]
        if outcome.metrics is None:
            self.failed(job, outcome)
            return
        if outcome.run_dir is not None and job.task.config.out is not None:  # shipped back (no shared storage)
            unpack_dir(outcome.run_dir, job.task.config.out)
        self.succeeded(job, outcome)

    def observed(self, job: Job, outcome: RunOutcome) -> None:
        """Every outcome, retried or not (accounting)."""

    def succeeded(self, job: Job, outcome: RunOutcome) -> None:
        raise NotImplementedError

    def failed(self, job: Job, outcome: RunOutcome) -> None:
        self.store_failed(job, outcome)

    def store_failed(self, job: Job, outcome: RunOutcome, out: Path | None = None) -> None:
        """In the store as failed (its run directory: `out`, else the task's): tables count it, the
        next drive over this store tries it again."""
        where = out or job.task.config.out
        self.store.add_failed(job.task.key, get_dataset(job.dataset).metric, outcome.error or "failed", self.commit,
                              str(where) if where else None)
        self.failures.append(f"{job.task.label}: {outcome.error}")
        self.bar.line(f"blurbkit: {job.task.label}: FAILED after {job.attempts} attempt(s): {outcome.error}")
        self.bar.settle(job.dataset, ok=False, seconds=outcome.seconds)


def portable(config: FinetuneConfig) -> FinetuneConfig:
    """Absolute data and model paths (not in a run's key): a Ray worker starts elsewhere."""
    from blurbkit.data.load import default_data

    data = config.data
    if data is None:
        with suppress(BlurbkitError):  # no default here: the worker says so, as a run in this process would
            data = str(default_data())
    updates = {name: str(Path(value).resolve()) for name, value in (("data", data), ("model", config.model))
               if value is not None and Path(value).exists()}
    return config.replace(**updates)
