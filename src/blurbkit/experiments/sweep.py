"""The sweep driver: the full protocol's runs through an executor, the store written here alone.

Restartable: every run is keyed in the store (experiments/run_records.py `run_key`), so a driver that
was killed and started again schedules only what is missing (a run whose directory was finished but
not stored is stored from there). Each run is claimed while in flight, so two drivers on one store
split the work instead of doubling it. A run that fails is retried up to `retries` times (not a
BlurbkitError: bad input fails the same way again), then stored as failed with its error.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.experiments.benchmark import summarise
from blurbkit.experiments.driver import Driver, Job, portable, resumable
from blurbkit.experiments.executors import Executor, RunOutcome, RunTask, run_seconds
from blurbkit.experiments.progress import SweepProgress
from blurbkit.experiments.protocol import STUDY, VARIANT, DatasetProtocol, choose, point_of
from blurbkit.experiments.run_records import run_key
from blurbkit.store.results import ALREADY_STORED, ResultsStore, RunKey
from blurbkit.train.config import FinetuneConfig

WAIT_LOOK = 10.0  # s between looks in the store for runs another driver holds


@dataclass
class SweepResult:
    chosen: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)  # dataset -> failed test runs (table)
    failures: list[str] = field(default_factory=list)  # every run that failed in this sweep
    executed: int = 0  # runs trained in this sweep (retries not counted twice)
    cpu_seconds: float = 0.0  # their seconds x threads per run
    wall_seconds: float = 0.0


@dataclass
class Sweep(Driver):
    store: ResultsStore
    executor: Executor
    runs_dir: Path | None
    model_label: str
    budget: str
    threads: int = 1
    retries: int = 2
    ship: bool = False  # run directories come back to the driver (no shared storage)
    force: bool = False
    progress: bool = True
    on_outcome: Callable[[RunOutcome], None] | None = None  # tests: see runs as they finish

    def run(self, protocols: Sequence[DatasetProtocol]) -> SweepResult:
        started = time.perf_counter()
        self.begin(SweepProgress({p.dataset: p.run_count() for p in protocols}, enabled=self.progress))
        self.result = SweepResult(failures=self.failures)
        self.protocols = {p.dataset: p for p in protocols}
        self.search_left: dict[str, set[str]] = defaultdict(set)
        self.dev: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.errored: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # failed selection runs per point
        self.stored = {r["run_key"]: r for r in self.store.rows(study=STUDY, model=self.model_label, budget=self.budget)}
        self.seen: set[str] = set()
        self.points: dict[str, str] = {}  # digest -> grid point (JSON) of the search runs
        self.queue: deque[tuple[DatasetProtocol, FinetuneConfig, bool]] = deque()
        self.waiting: list[tuple[DatasetProtocol, FinetuneConfig, bool]] = []  # held by another live driver
        self.looked = 0.0  # when the waiting runs were last looked for in the store
        self.announced: set[str] = set()  # waiting runs already named on the console

        def start() -> None:
            for p in protocols:
                # Every search run is known before any settles: a dataset's point is chosen once
                # all of them are (a restarted driver finds most of them stored at once).
                for config in p.selection_runs():
                    digest = self._key(config).digest()
                    self.search_left[p.dataset].add(digest)
                    self.points[digest] = json.dumps(point_of(config), sort_keys=True)
                    self._enqueue(p, config, search=True)
            self.refill()

        self.drive(start)
        self._tabulate()
        self.result.wall_seconds = time.perf_counter() - started
        return self.result

    # -- scheduling ---------------------------------------------------------------------------

    def _key(self, config: FinetuneConfig) -> RunKey:
        return run_key(STUDY, VARIANT, config, self.model_label, self.budget)

    def _out(self, key: RunKey, config: FinetuneConfig) -> Path | None:
        if self.runs_dir is None:
            return None
        return self.runs_dir / STUDY / VARIANT / config.dataset / f"seed{config.seed}-{key.digest()[:10]}"

    def _enqueue(self, p: DatasetProtocol, config: FinetuneConfig, search: bool, first: bool = False) -> None:
        digest = self._key(config).digest()
        if digest in self.seen:  # a test seed that was a search run already
            return
        self.seen.add(digest)
        (self.queue.appendleft if first else self.queue.append)((p, config, search))

    def pending(self) -> bool:
        return bool(self.queue or self.waiting)

    def refill(self) -> None:
        """Claim and submit while the executor has free slots (a claim only for a run about to
        start, so a second driver on the store takes the runs this one has not reached); runs
        another driver holds are looked for again every WAIT_LOOK seconds until stored or free."""
        if self.waiting and time.monotonic() - self.looked > WAIT_LOOK:
            self.looked = time.monotonic()
            waiting, self.waiting = self.waiting, []
            self.queue.extendleft(reversed(waiting))
        while self.queue and len(self.jobs) < self.executor.slots:
            self._start(*self.queue.popleft())

    def _start(self, p: DatasetProtocol, config: FinetuneConfig, search: bool) -> None:
        key = self._key(config)
        digest = key.digest()
        row = None if self.force else self.stored.get(digest)
        if row is not None and row.get("status", "ok") == "ok":
            self._finished(p.dataset, digest, search, row["dev_score"], None)
            return
        out = self._out(key, config)
        found = resumable(out, self.force, self.commit)
        if found is not None:  # trained before the driver was stopped, not stored yet
            self._store(p.dataset, key, found[0], out, search, found[1])
            return
        why_not = self.store.claim(key, force=self.force)
        if why_not == ALREADY_STORED:  # stored by another process since we looked
            stored = next((r for r in self.store.rows(study=STUDY, model=self.model_label, budget=self.budget)
                           if r["run_key"] == digest), None)
            self._finished(p.dataset, digest, search, stored["dev_score"] if stored else None, None)
            return
        if why_not is not None:
            if digest not in self.announced:
                self.announced.add(digest)
                self.bar.line(f"blurbkit: {config.dataset} seed {config.seed} {point_of(config)} {why_not}; "
                              "waiting for it")
            self.waiting.append((p, config, search))
            return
        label = f"{config.dataset} seed {config.seed} lr {config.lr:g} bs {config.batch_size} ep {config.epochs}"
        task = RunTask(key, portable(config).replace(out=out, overwrite=True, resume=not self.force), label, self.threads, self.ship and out is not None, self.env)
        self.submit(Job(task, p.dataset, payload=search))

    def _choose(self, p: DatasetProtocol) -> None:
        best = choose(p, self.dev[p.dataset], self.errored[p.dataset])
        if best is None:
            self.bar.line(f"blurbkit: {p.dataset}: no search run finished; no test runs")
            self.bar.drop(p.dataset, max(0, p.test_seeds - p.grid.selection_seeds))
            return
        self.result.chosen[p.dataset] = best
        point, dev = best
        self.bar.line(f"blurbkit: {p.dataset}: chose lr {point['lr']:g} bs {point['batch_size']} epochs {point['epochs']} "
                      f"(mean dev {100 * dev:.2f}); {p.test_seeds} test seeds")
        for config in reversed(p.test_runs(point)):  # ahead of other datasets' search runs, in seed order
            self._enqueue(p, config, search=False, first=True)

    # -- outcomes -----------------------------------------------------------------------------

    def observed(self, job: Job, outcome: RunOutcome) -> None:
        if self.on_outcome:
            self.on_outcome(outcome)
        self.result.cpu_seconds += outcome.seconds * job.task.threads

    def succeeded(self, job: Job, outcome: RunOutcome) -> None:
        task, metrics = job.task, outcome.metrics
        assert metrics is not None
        self.result.executed += 1
        where = f" on {outcome.host}" if outcome.host else ""
        self._store(job.dataset, task.key, metrics, task.config.out, job.payload, self.commit,
                    f"{task.label}: dev {100 * metrics['dev']['score']:.2f} test "
                    f"{100 * metrics['test']['score']:.2f} ({outcome.seconds:.0f} s{where})", run_seconds(outcome))

    def failed(self, job: Job, outcome: RunOutcome) -> None:
        self.result.executed += 1
        self.store_failed(job, outcome)
        if job.payload and outcome.digest in self.points:
            self.errored[job.dataset][self.points[outcome.digest]] += 1
        self._search_done(job.dataset, outcome.digest, job.payload)

    def _store(self, dataset: str, key: RunKey, metrics: dict[str, Any], out: Path | None, search: bool,
               commit: str, line: str | None = None, seconds: float | None = None) -> None:
        self.store.add(key, metrics, commit, str(out) if out else None, replace=self.force)
        self.stored[key.digest()] = {"run_key": key.digest(), "dev_score": metrics["dev"]["score"], "status": "ok"}
        if line:
            self.bar.line(f"blurbkit: {line}")
        self._finished(dataset, key.digest(), search, metrics["dev"]["score"], seconds)

    def _finished(self, dataset: str, digest: str, search: bool, dev: float | None, seconds: float | None) -> None:
        self.bar.settle(dataset, ok=True, seconds=seconds)
        if search and dev is not None:
            self.dev[dataset][self.points[digest]].append(dev)
        self._search_done(dataset, digest, search)

    def _search_done(self, dataset: str, digest: str, search: bool) -> None:
        left = self.search_left[dataset]
        if search and digest in left:
            left.discard(digest)
            if not left:
                self._choose(self.protocols[dataset])

    def _tabulate(self) -> None:
        """Test mean ± std of each chosen point; failed test runs counted beside, not averaged."""
        stored = self.store.rows(study=STUDY, model=self.model_label, budget=self.budget)
        rows = []
        for dataset, (point, _) in self.result.chosen.items():
            keys = {self._key(c).digest() for c in self.protocols[dataset].test_runs(point)}
            rows += [r for r in stored if r["run_key"] in keys]
        self.result.per_dataset = summarise(rows).get(VARIANT, {})
        self.result.failed = {}
        for row in rows:
            if row.get("status", "ok") != "ok":
                self.result.failed[row["dataset"]] = self.result.failed.get(row["dataset"], 0) + 1
