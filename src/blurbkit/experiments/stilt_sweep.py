"""A STILT grid through an executor (experiments/executors.py: the local process pool or Ray): the
baselines are submitted first; a transfer run is submitted once its intermediate run is stored with
its model on disk. The driver alone writes the results store, as in experiments/sweep.py; workers
read the intermediate models from --runs-dir, so Ray workers must share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blurbkit.experiments.driver import Driver, Job, portable, resumable
from blurbkit.experiments.executors import Executor, RunOutcome, RunTask, run_seconds
from blurbkit.experiments.progress import SweepProgress
from blurbkit.experiments.stilt import StiltPlan, StiltRun, stored_digests
from blurbkit.store.results import ALREADY_STORED


class StiltSweep(Driver):
    def __init__(self, plan: StiltPlan, executor: Executor, threads: int = 1, retries: int = 2, progress: bool = True) -> None:
        self.plan, self.executor, self.threads, self.retries = plan, executor, threads, retries
        self.store, self.bench = plan.bench.store, plan.bench
        expected: dict[str, int] = {}
        for run in plan.runs():
            expected[run.target] = expected.get(run.target, 0) + 1
        self.begin(SweepProgress(expected, enabled=progress))
        self.waiting: dict[str, list[StiltRun]] = {}  # intermediate digest -> transfers waiting for it
        self.not_run: list[str] = []
        self.forced: set[str] = set()  # digests trained again over a stored row (--force, a lost model)

    def run(self) -> list[str]:
        """Everything the store lacks; returns what could not run or failed."""
        self.stored = stored_digests(self.plan)

        def start() -> None:
            for run in self.plan.baselines:
                self._submit(run, force=self._lost_model(run))
            for run in self.plan.transfers:
                self._after_intermediate(run)

        self.drive(start)
        return self.failures + self.not_run

    def _lost_model(self, run: StiltRun) -> bool:
        """A source's baseline stored without its model while a transfer still needs it: train it again."""
        if run.target not in self.plan.sources or run.key.digest() not in self.stored:
            return False
        pending = any(t.source_key == run.key and t.key.digest() not in self.stored for t in self.plan.transfers)
        if pending and not (self.plan.intermediate_model(run) / "config.json").is_file():
            self.bar.line(f"blurbkit: {run.target} seed {run.seed}: intermediate stored but its model is missing; "
                          "training it again with the model kept")
            return True  # trained again in place of its stored run: still one expected run
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
        found = resumable(out, force, self.commit)
        if found is not None:  # trained before the driver stopped, not stored yet
            self._store(run, found[0], out, found[1], None)
            return
        why_not = self.store.claim(run.key, force=force)
        if why_not is not None:
            if why_not == ALREADY_STORED:
                self.stored.add(digest)
                self.bar.settle(run.target, ok=True)
            else:
                self._skip(run, why_not)
            return
        task = RunTask(run.key, portable(run.config).replace(out=out, overwrite=True, resume=not force, progress=False), what,
                       self.threads, False, self.env)
        if force:
            self.forced.add(digest)
        self.submit(Job(task, run.target, payload=run))

    def succeeded(self, job: Job, outcome: RunOutcome) -> None:
        assert outcome.metrics is not None
        self._store(job.payload, outcome.metrics, job.task.config.out, self.commit, run_seconds(outcome))
        self._release_waiting(outcome.digest)

    def failed(self, job: Job, outcome: RunOutcome) -> None:
        self.store_failed(job, outcome)
        self._release_waiting(outcome.digest)

    def _release_waiting(self, digest: str) -> None:
        for waiting in self.waiting.pop(digest, []):
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
