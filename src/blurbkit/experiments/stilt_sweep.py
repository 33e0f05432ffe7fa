"""A STILT grid through an executor (experiments/executors.py: the local process pool or Ray): the
baselines are submitted first; a transfer run is submitted once its intermediate run is stored with
its model on disk. The driver alone writes the results store, as in experiments/sweep.py; workers
read the intermediate models from --runs-dir, so Ray workers must share it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from blurbkit.experiments.benchmark import finished_run
from blurbkit.experiments.executors import FORWARDED_ENV, Executor, RunOutcome, RunTask
from blurbkit.experiments.progress import SweepProgress
from blurbkit.experiments.stilt import StiltPlan, StiltRun, stored_digests
from blurbkit.store.results import ALREADY_STORED
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.provenance import blurbkit_commit

POLL = 2.0  # s between looks at the executor
CLAIM_BEAT = 30.0  # s between heartbeats of the claims of runs in flight


class StiltSweep:
    def __init__(self, plan: StiltPlan, executor: Executor, threads: int = 1, retries: int = 2, progress: bool = True) -> None:
        self.plan, self.executor, self.threads, self.retries = plan, executor, threads, retries
        self.store, self.bench = plan.bench.store, plan.bench
        self.env = {name: value for name in FORWARDED_ENV if (value := os.environ.get(name))}
        expected: dict[str, int] = {}
        for run in plan.runs():
            expected[run.target] = expected.get(run.target, 0) + 1
        self.bar = SweepProgress(expected, enabled=progress)
        self.jobs: dict[str, tuple[StiltRun, RunTask, int]] = {}  # digest -> run, task, attempts so far
        self.waiting: dict[str, list[StiltRun]] = {}  # intermediate digest -> transfers waiting for it
        self.not_run: list[str] = []
        self.failures: list[str] = []
        self.forced: set[str] = set()  # digests trained again over a stored row (--force, a lost model)

    def run(self) -> list[str]:
        """Everything the store lacks; returns what could not run or failed."""
        self.commit = blurbkit_commit()
        self.stored = stored_digests(self.plan)
        try:
            for run in self.plan.baselines:
                self._submit(run, force=self._lost_model(run))
            for run in self.plan.transfers:
                self._after_intermediate(run)
            beat = time.monotonic()
            while self.jobs:
                for outcome in self.executor.wait(POLL):
                    self._settle(outcome)
                if time.monotonic() - beat > CLAIM_BEAT:
                    self.store.touch([task.key for _, task, _ in self.jobs.values()])
                    beat = time.monotonic()
                self.bar.show(self.executor.running(), self.executor.slots)
        finally:
            for _, task, _ in self.jobs.values():
                self.store.release(task.key)
            self.executor.close()
            self.bar.close()
        return self.failures + self.not_run

    def _lost_model(self, run: StiltRun) -> bool:
        """A source's baseline stored without its model while a transfer still needs it: train it again."""
        if run.target not in self.plan.sources or run.key.digest() not in self.stored:
            return False
        pending = any(t.source_key == run.key and t.key.digest() not in self.stored for t in self.plan.transfers)
        if pending and not (self.plan.intermediate_model(run) / "config.json").is_file():
            self.bar.line(f"blurbkit: {run.target} seed {run.seed}: intermediate stored but its model is missing; "
                          "training it again with the model kept")
            self.bar.drop(run.target, -1)
            return True
        return False

    def _after_intermediate(self, run: StiltRun) -> None:
        assert run.source_key is not None
        source = run.source_key.digest()
        if source in self.jobs:
            self.waiting.setdefault(source, []).append(run)
        elif (Path(str(run.config.model)) / "config.json").is_file() or run.key.digest() in self.stored:
            self._submit(run)
        else:
            self._skip(run, "no intermediate model")

    def _submit(self, run: StiltRun, force: bool = False) -> None:
        force = force or self.bench.force
        digest = run.key.digest()
        what = f"{run.target} seed {run.seed} [{run.variant}]"
        if digest in self.stored and not force:
            self.bar.settle(run.target, ok=True)
            return
        out = self.bench.run_dir(run.variant, run.config, run.key)
        metrics = None if force else finished_run(out)
        if metrics is not None:  # trained before the driver stopped, not stored yet
            self._store(run, metrics, out, metrics.pop("_blurbkit_commit", None) or self.commit, None)
            return
        why_not = self.store.claim(run.key, force=force)
        if why_not is not None:
            if why_not == ALREADY_STORED:
                self.stored.add(digest)
                self.bar.settle(run.target, ok=True)
            else:
                self._skip(run, why_not)
            return
        task = RunTask(run.key, run.config.replace(out=out, overwrite=True, resume=not force, progress=False), what,
                       self.threads, False, self.env)
        self.jobs[digest] = (run, task, 0)
        if force:
            self.forced.add(digest)
        self.executor.submit(task)

    def _settle(self, outcome: RunOutcome) -> None:
        if outcome.digest not in self.jobs:
            return
        run, task, attempts = self.jobs.pop(outcome.digest)
        attempts += 1
        if outcome.metrics is not None:
            self._store(run, outcome.metrics, task.config.out, self.commit, outcome.seconds)
        elif outcome.retryable and attempts <= self.retries:
            self.bar.line(f"blurbkit: {task.label}: {outcome.error}; retrying ({attempts + 1} of {self.retries + 1})")
            self.jobs[outcome.digest] = (run, task, attempts)
            self.executor.submit(task)
            return
        else:
            out = str(task.config.out) if task.config.out else None
            self.store.add_failed(task.key, get_dataset(run.target).metric, outcome.error or "failed", self.commit, out)
            self.failures.append(f"{task.label}: {outcome.error}")
            self.bar.line(f"blurbkit: {task.label}: FAILED after {attempts} attempt(s): {outcome.error}")
            self.bar.settle(run.target, ok=False, seconds=outcome.seconds)
        for waiting in self.waiting.pop(outcome.digest, []):
            self._after_intermediate(waiting)

    def _store(self, run: StiltRun, metrics: dict[str, Any], out: Any, commit: str, seconds: float | None) -> None:
        self.store.add(run.key, metrics, commit, str(out) if out else None, replace=run.key.digest() in self.forced)
        self.stored.add(run.key.digest())
        self.bar.line(f"blurbkit: {run.target} seed {run.seed} [{run.variant}] test {metrics['metric']} = "
                      f"{100 * metrics['test']['score']:.2f}" + (f" ({seconds:.0f} s)" if seconds is not None else ""))
        self.bar.settle(run.target, ok=True, seconds=seconds)

    def _skip(self, run: StiltRun, why: str) -> None:
        self.not_run.append(f"{run.target} seed {run.seed} [{run.variant}]: {why}")
        self.bar.line(f"blurbkit: {run.target} seed {run.seed} [{run.variant}] not run: {why}")
        self.bar.settle(run.target, ok=False)
