"""STILT, intermediate-task transfer (Jeong & Hwang): fine-tune on an intermediate task A, keep the
fine-tuned encoder, build a new featurizer and head for the target task B, fine-tune on B with B's
recipe and score B's test set; the matrix runs every ordered pair plus each target's baseline.

Every run goes through the engine and the results store (`Benchmark`), study "stilt":
- variant `baseline`: B fine-tuned from the pretrained encoder. The baseline of A *is* A's
  intermediate run (same data, recipe, seed and encoder), so it is trained once per seed, with its
  model kept in its run directory, and every target after A starts from that directory's encoder.
- variant `after-A@DIGEST`: B fine-tuned from A's intermediate encoder of the same seed. DIGEST is the
  start of the intermediate run's store key, so a target run is tied to the exact intermediate it
  started from: other intermediate settings make new target runs instead of reusing stale ones.

The store skips what it holds, so an interrupted matrix continues where it stopped. This module
plans and collects (``stilt_report.py`` tabulates); it never trains itself.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.benchmark import Benchmark
from blurbkit.experiments.run_records import run_key
from blurbkit.metrics.seeds import sample_std
from blurbkit.store.results import RunKey
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig

STUDY = "stilt"
BASELINE = "baseline"
TRANSFER_PREFIX = "after-"


def transfer_variant(source: str, intermediate_digest: str) -> str:
    """The store's variant of a run after intermediate task `source` (tied to that intermediate run)."""
    return f"{TRANSFER_PREFIX}{source}@{intermediate_digest[:8]}"


def intermediate_of(variant: str) -> str | None:
    """The intermediate task of a stored variant: None for the baseline, the dataset of
    'after-A@DIGEST'; BlurbkitError for a variant this study does not make."""
    if variant == BASELINE:
        return None
    source, at, digest = variant.removeprefix(TRANSFER_PREFIX).rpartition("@")
    if not variant.startswith(TRANSFER_PREFIX) or not at or not source or not digest:
        raise BlurbkitError(f"not a STILT variant: {variant!r}")
    return source


@dataclass(frozen=True)
class StiltRun:
    variant: str
    config: FinetuneConfig
    key: RunKey
    target: str
    seed: int
    source: str | None = None  # the intermediate task; None for a baseline
    source_key: RunKey | None = None  # the intermediate run's key (a baseline run of `source`)


def check_pair(intermediate: str, target: str) -> None:
    if get_dataset(intermediate).name == get_dataset(target).name:
        raise BlurbkitError(f"--intermediate and --target are the same dataset ({target}): STILT transfers between two tasks")


def check_matrix(datasets: Sequence[str]) -> None:
    repeated = sorted({name for name in datasets if list(datasets).count(name) > 1})
    if repeated:
        raise BlurbkitError(f"--datasets names {', '.join(repeated)} more than once")
    if len(datasets) < 2:
        raise BlurbkitError("--matrix needs at least two datasets (every ordered pair of different tasks)")


class StiltPlan:
    """The runs of a STILT grid: baselines of every dataset (the intermediates of the sources, with
    their models kept) and every (source -> target) pair of different datasets, per seed."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str], seeds: int,
                 make_config: Callable[[str, int], FinetuneConfig], bench: Benchmark, model_label: str, budget: str) -> None:
        if bench.runs_dir is None:
            raise BlurbkitError("STILT keeps the intermediate models in run directories: --runs-dir is needed")
        self.sources, self.targets, self.seeds = list(sources), list(targets), seeds
        self.bench, self.model_label, self.budget = bench, model_label, budget
        self.baselines: list[StiltRun] = []
        self.transfers: list[StiltRun] = []
        by_source: dict[tuple[str, int], StiltRun] = {}
        for seed in range(seeds):
            for name in dict.fromkeys([*self.sources, *self.targets]):
                # A source's model is needed later; other runs keep theirs only when asked (--save-models).
                config = make_config(name, seed)
                config = config.replace(save_model=config.save_model or name in self.sources)
                run = StiltRun(BASELINE, config, self._key(BASELINE, config), name, seed)
                self.baselines.append(run)
                by_source[(name, seed)] = run
            for source in self.sources:
                intermediate = by_source[(source, seed)]
                model = self.intermediate_model(intermediate)
                for target in self.targets:
                    if target == source:
                        continue
                    variant = transfer_variant(source, intermediate.key.digest())
                    config = make_config(target, seed).replace(model=str(model))
                    self.transfers.append(StiltRun(variant, config, self._key(variant, config), target, seed,
                                                   source, intermediate.key))
        self.by_key = {run.key.digest(): run for run in self.baselines}

    def _key(self, variant: str, config: FinetuneConfig) -> RunKey:
        # The model label is the pretrained encoder's for every run: the intermediate is in the variant.
        return run_key(STUDY, variant, config, self.model_label, self.budget)

    def intermediate_model(self, run: StiltRun) -> Path:
        out = self.bench.run_dir(run.variant, run.config, run.key)
        assert out is not None  # runs_dir is set (checked above)
        return out / "model"

    def runs(self) -> list[StiltRun]:
        return [*self.baselines, *self.transfers]

    def describe(self) -> str:
        per_seed_baselines = len(self.baselines) // self.seeds
        per_seed_transfers = len(self.transfers) // self.seeds
        return (f"{per_seed_baselines} baselines (incl. {len(self.sources)} intermediate run(s), models kept) + "
                f"{per_seed_transfers} transfer run(s) = {per_seed_baselines + per_seed_transfers} runs per seed x "
                f"{self.seeds} seeds = {len(self.runs())} runs ({self.budget})")


def head_lines(sources: Sequence[str], targets: Sequence[str]) -> list[str]:
    """What moves from A to B, once per pair of task types: the encoder; never A's featurizer and head."""
    lines, seen = [], set()
    for source in sources:
        for target in targets:
            if source == target:
                continue
            a, b = get_dataset(source), get_dataset(target)
            if (a.task_type, b.task_type) in seen:
                continue
            seen.add((a.task_type, b.task_type))
            across = "within one task type, other labels" if a.task is b.task else "across task types"
            lines.append(f"{a.task.title} -> {b.task.title} ({across}, e.g. {a.name} -> {b.name}): the fine-tuned encoder "
                         f"transfers; {a.name}'s {a.task.featurizer}+{a.task.head} head is dropped and a new "
                         f"{b.task.featurizer}+{b.task.head} head is built for {b.name}'s labels")
    return lines


@dataclass
class Cell:
    scores: list[float]  # % per seed that finished
    baseline: float | None = None  # mean of the target's baseline over the same seeds (%)
    failed: int = 0  # seeds no better than the trivial predictor (a failed run, tasks/types/base.py)
    paired: float | None = None  # this cell's mean over the seeds its baseline has too (the difference's side)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        return sample_std(self.scores)

    @property
    def diff(self) -> float | None:
        if self.baseline is None:
            return None
        return (self.mean if self.paired is None else self.paired) - self.baseline


def collect(plan: StiltPlan, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str | None], Cell]:
    """(target, source or None for the baseline) -> the cell's seed scores (stored, non-failed runs).
    A pair's difference is over the seeds both it and the baseline have, so a seed missing on
    either side does not compare unlike samples."""
    by_digest = {row["run_key"]: row for row in rows if row.get("status", "ok") == "ok"}
    seeds: dict[tuple[str, str | None], dict[int, float]] = {}
    failed: dict[tuple[str, str | None], int] = {}
    for run in plan.runs():
        row = by_digest.get(run.key.digest())
        if row is not None:
            seeds.setdefault((run.target, run.source), {})[run.seed] = 100 * row["test_score"]
            if json.loads(row.get("test_metrics") or "{}").get("failed"):
                failed[(run.target, run.source)] = failed.get((run.target, run.source), 0) + 1
    cells: dict[tuple[str, str | None], Cell] = {}
    for (target, source), scores in seeds.items():
        cell = Cell([scores[s] for s in sorted(scores)], failed=failed.get((target, source), 0))
        base = seeds.get((target, None), {})
        shared = [s for s in scores if s in base]  # both sides on the same seeds: a failed baseline seed out of both
        if source is not None and shared:
            cell.baseline = statistics.fmean(base[s] for s in shared)
            cell.paired = statistics.fmean(scores[s] for s in shared)
        cells[(target, source)] = cell
    return cells


def stored_digests(plan: StiltPlan) -> set[str]:
    rows = plan.bench.store.rows(study=STUDY, model=plan.model_label, budget=plan.budget)
    return {row["run_key"] for row in rows if row.get("status", "ok") == "ok"}


def run_in_process(plan: StiltPlan, progress: bool = True) -> list[str]:
    """Train what the store lacks, in this process, seed by seed (each seed's baselines, then its
    transfers), so an interrupted matrix has whole seeds to show. Returns what could not run."""
    from blurbkit.experiments.progress import SweepProgress

    bench = plan.bench
    expected: dict[str, int] = {}
    for run in plan.runs():
        expected[run.target] = expected.get(run.target, 0) + 1
    bar = SweepProgress(expected, enabled=progress)
    bench.say = bar.line
    not_run: list[str] = []
    try:
        for seed in range(plan.seeds):
            for run in (r for r in plan.baselines if r.seed == seed):
                _one(plan, bench, run, bar)
            ready = ensure_intermediates(plan, seed, bar)
            for run in (r for r in plan.transfers if r.seed == seed):
                if run.source in ready:
                    _one(plan, bench, run, bar)
                else:
                    not_run.append(f"{run.target} seed {seed} after {run.source}: no intermediate model")
                    bar.settle(run.target, ok=False)
    finally:
        bench.say = None
        bar.close()
    return not_run


def _one(plan: StiltPlan, bench: Benchmark, run: StiltRun, bar: Any, force: bool = False) -> None:
    import time

    bar.show(1, 1)
    started = time.perf_counter()
    before = bench.force
    bench.force = bench.force or force
    try:
        bench.run([(run.variant, run.config)], plan.model_label, plan.budget)
    finally:
        bench.force = before
    ok = run.key.digest() in stored_digests(plan)
    bar.settle(run.target, ok=ok, seconds=time.perf_counter() - started)


def ensure_intermediates(plan: StiltPlan, seed: int, bar: Any) -> set[str]:
    """The sources of `seed` whose intermediate model is on disk. A source stored without its model
    (an earlier run as a target-only baseline, or its directory removed) while some transfer still
    needs it is trained again, with its model kept, replacing its row."""
    stored = stored_digests(plan)
    ready = set()
    for run in (r for r in plan.baselines if r.seed == seed and r.target in plan.sources):
        model = plan.intermediate_model(run)
        pending = [t for t in plan.transfers if t.source_key == run.key and t.key.digest() not in stored]
        if pending and not (model / "config.json").is_file() and run.key.digest() in stored:
            bar.line(f"blurbkit: {run.target} seed {seed}: intermediate stored but its model is not in {model.parent}; "
                     "training it again with the model kept")
            bar.drop(run.target, -1)  # one more run than planned
            _one(plan, plan.bench, run, bar, force=True)
        if (model / "config.json").is_file() or not pending:
            ready.add(run.target)
    return ready
