"""A fixed grid of runs through an executor (the local process pool or Ray): what `Benchmark.run`
does in this process, for ablation and stability studies, `benchmark --protocol default` and `cv`.

The same as in this process: the same run keys and run directories (so a grid can move between the
two and resume), a run directory that finished but was not stored is stored from there, each run is
claimed in the store just before it is submitted (so several drivers on one store split the grid
instead of one holding it all), --force trains again over stored rows, and --keep-going stores a run
that failed on bad input as failed and goes on; without it the grid stops on that error (no new run
starts, the runs in flight finish and are stored) and the error is raised.

As in experiments/sweep.py (experiments/driver.py): workers only train, the driver alone writes the
store, a run that crashed is tried again up to `retries` times and then stored as failed, one line
per finished run under a live bar, and the claims of runs in flight are released on Ctrl-C.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.driver import Driver, Job, portable, resumable
from blurbkit.experiments.executors import RunOutcome, RunTask, run_seconds
from blurbkit.experiments.progress import SweepProgress
from blurbkit.experiments.run_records import run_key
from blurbkit.store.results import ALREADY_STORED, RunKey
from blurbkit.train.config import FinetuneConfig

if TYPE_CHECKING:
    from blurbkit.experiments.benchmark import Benchmark  # which hands its grids to this module


class GridSweep(Driver):
    """The executor is closed when the grid ends (Ray shut down): one `Benchmark.run` or `run_all`
    per executor; `run_all` takes several grids at once."""

    def __init__(self, bench: Benchmark) -> None:
        assert bench.executor is not None
        self.bench, self.store, self.executor = bench, bench.store, bench.executor
        self.retries, self.threads, self.force = bench.retries, bench.threads, bench.force

    def run(self, items: Sequence[tuple[str, FinetuneConfig, str]], budget: str,
            follow_up: Callable[[set[str]], Sequence[tuple[str, FinetuneConfig, str]]] | None = None) -> None:
        """Every (variant, config, model label) not stored yet; failures go to `bench.failures`.
        `follow_up` is asked, whenever runs have settled, for runs that may start now (given the
        run keys still queued or in flight); they are queued ahead of the rest."""
        self.budget, self.follow_up, self.asked_at = budget, follow_up, -1
        runs: dict[str, tuple[str, FinetuneConfig, RunKey]] = {}
        for variant, config, label in items:
            key = run_key(self.bench.study, variant, config, label, budget)
            runs.setdefault(key.digest(), (variant, config, key))  # a run listed twice is one run
        expected: dict[str, int] = {}
        for _, config, _ in runs.values():
            expected[config.dataset] = expected.get(config.dataset, 0) + 1
        self.begin(SweepProgress(expected, enabled=self.bench.progress))
        stored = set() if self.force else {
            r["run_key"] for r in self.store.rows(study=self.bench.study, budget=budget) if r.get("status", "ok") == "ok"}
        self.listed = set(runs)
        self.queue = deque(run for digest, run in runs.items() if digest not in stored)
        for digest in stored & runs.keys():
            self.bar.settle(runs[digest][1].dataset, ok=True)
        if stored & runs.keys():
            self.bar.line(f"blurbkit: {len(stored & runs.keys())} of {len(runs)} runs already stored; skipped (--force re-runs)")
        self.stop: str | None = None  # the error that stopped the grid (no --keep-going)
        self.drive(self.refill)
        self.bench.failures.extend(self.failures)
        if self.stop is not None:
            raise BlurbkitError(self.stop)

    def refill(self) -> None:
        """Claim and submit while the executor has free slots: a claim is taken only for a run about
        to start, so another driver on the same store takes the runs this one has not reached. Runs
        settle here too (stored before, or finished but not stored), so the follow-up is asked again
        until nothing new has settled."""
        while True:
            asking = self.follow_up is not None and self.stop is None and self._settled() != self.asked_at
            if asking:
                self.asked_at = self._settled()
                self._queue_first(self.follow_up({key.digest() for _, _, key in self.queue} | set(self.jobs)))
            while self.queue and self.stop is None and len(self.jobs) < self.executor.slots:
                self._start(*self.queue.popleft())
            if not asking:
                return

    def _settled(self) -> int:
        return self.bar.done + self.bar.failed

    def _queue_first(self, items: Sequence[tuple[str, FinetuneConfig, str]]) -> None:
        new = []
        for variant, config, label in items:
            key = run_key(self.bench.study, variant, config, label, self.budget)
            if key.digest() not in self.listed:
                self.listed.add(key.digest())
                self.bar.add(config.dataset, 1)
                new.append((variant, config, key))
        self.queue.extendleft(reversed(new))

    def _start(self, variant: str, config: FinetuneConfig, key: RunKey) -> None:
        what = f"{config.dataset} seed {config.seed} [{variant}]"
        why_not = self.store.claim(key, force=self.force)
        if why_not is not None:
            hint = " (--force re-runs)" if why_not == ALREADY_STORED else ""
            self.bar.line(f"blurbkit: {what} {why_not}; skipped{hint}")
            if why_not == ALREADY_STORED:
                self.bar.settle(config.dataset, ok=True)
            else:
                self.bar.drop(config.dataset, 1)
            return
        out = self.bench.run_dir(variant, config, key)
        found = resumable(out, self.force, self.commit)
        if found is not None:
            self.bar.line(f"blurbkit: {what} was trained before but not stored; storing its result from {out}")
            self._store(key, what, config.dataset, found[0], out, found[1], None)
            return
        # A run killed earlier continues from its checkpoint in `out` (--force starts it over).
        task_config = portable(config).replace(out=out.resolve() if out else None, overwrite=True, resume=not self.force,
                                               progress=False)
        self.submit(Job(RunTask(key, task_config, what, self.threads, False, self.env), config.dataset, payload=out))

    def succeeded(self, job: Job, outcome: RunOutcome) -> None:
        assert outcome.metrics is not None
        self._store(job.task.key, job.task.label, job.dataset, outcome.metrics, job.payload, self.commit, run_seconds(outcome))

    def failed(self, job: Job, outcome: RunOutcome) -> None:
        if outcome.retryable or self.bench.keep_going:
            self.store_failed(job, outcome, job.payload)
            return
        # Bad input, no --keep-going: as in this process, nothing is stored for it and the grid stops.
        self.store.release(job.task.key)
        self.bar.settle(job.dataset, ok=False, seconds=outcome.seconds)
        self._error(f"{job.task.label}: {outcome.error}")

    def _store(self, key: RunKey, what: str, dataset: str, metrics: dict[str, Any], out: Path | None, commit: str,
               seconds: float | None) -> None:
        try:
            stored = self.store.add(key, metrics, commit, str(out) if out else None, replace=self.force)
        except BlurbkitError as err:
            # The run itself is done: its directory keeps the result for the next grid over this store.
            self.store.release(key)
            self.bar.settle(dataset, ok=False, seconds=seconds)
            where = f"its result is in {out}" if out else "it has no run directory (no --runs-dir)"
            self._error(f"{what} finished but is not stored ({err}); {where}")
            return
        where = f" ({out})" if out else ""
        took = f" in {seconds:.0f} s" if seconds is not None else ""
        also = "" if stored else "; another process had stored the same run, its row is kept"
        self.bar.line(f"blurbkit: {what} test {metrics['metric']} = {100 * metrics['test']['score']:.2f}{where}{took}{also}")
        self.bar.settle(dataset, ok=True, seconds=seconds)

    def _error(self, message: str) -> None:
        if self.bench.keep_going or self.stop is not None:
            self.failures.append(message)
            self.bar.line(f"blurbkit: error: {message}")
            return
        self.stop = message  # raised when the drive ends (the CLI prints it)
        if self.jobs:
            self.bar.line(f"blurbkit: {message}; stopping (--keep-going goes on): {len(self.jobs)} run(s) in flight finish first")
