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
plans and tabulates; it never trains itself.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.benchmark import Benchmark, run_key
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
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

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


def stilt_table(plan: StiltPlan, cells: dict[tuple[str, str | None], Cell]) -> str:
    """The paper's Tables 2-3: rows = targets, columns = the baseline, then each intermediate task;
    a cell = the target's test score after that intermediate task (mean over seeds) and its
    difference from the baseline."""
    def title(name: str) -> str:
        spec = get_dataset(name)
        return f"{spec.title} ({spec.task.title.lower()})"

    header = ["target \\ intermediate", "none (baseline)", *(get_dataset(s).title for s in plan.sources)]
    lines = [f"| {' | '.join(header)} |", "|---" * len(header) + "|"]
    for target in plan.targets:
        base = cells.get((target, None))
        row = [title(target), f"{base.mean:.2f} ± {base.std:.2f}{_short(base, plan.seeds)}" if base else "—"]
        for source in plan.sources:
            cell = cells.get((target, source))
            if source == target:
                row.append("·")
            elif cell is None:
                row.append("—")
            else:
                diff = "" if cell.diff is None else f" ({cell.diff:+.2f})"
                row.append(f"{cell.mean:.2f}{diff}{_short(cell, plan.seeds)}")
        lines.append(f"| {' | '.join(row)} |")
    lines += ["", f"Cells: the target's test score after fine-tuning on the intermediate task first (mean over "
              f"{plan.seeds} seed(s); each seed's target run starts from that seed's intermediate encoder), and in "
              "brackets the difference from the baseline (no intermediate task). The encoder transfers; the "
              "intermediate task's featurizer and head are dropped and the target's are built new, across task "
              "types and within one. †k: k of the seeds are failed runs, no better than the trivial predictor "
              "(majority class, no entity; docs/ARCHITECTURE.md, Failed runs)."]
    if plan.budget != "full":
        lines.append(f"BUDGET RUN ({plan.budget}): small training subsets and few epochs on CPU; not comparable to "
                     "the paper's numbers, only its directions.")
    return "\n".join(lines)


def _short(cell: Cell, seeds: int) -> str:
    failed = f" †{cell.failed}" if cell.failed else ""
    return failed + ("" if len(cell.scores) == seeds else f" [n={len(cell.scores)}]")


def stilt_csv(plan: StiltPlan, cells: dict[tuple[str, str | None], Cell]) -> list[list[str]]:
    rows = [["target", "target_task", "intermediate", "intermediate_task", "n", "failed", "mean", "std", "baseline", "diff",
             "seed_scores"]]
    for target in plan.targets:
        for source in [None, *plan.sources]:
            cell = cells.get((target, source))
            if cell is None or source == target:
                continue
            rows.append([target, get_dataset(target).task_type, source or "", get_dataset(source).task_type if source else "",
                         str(len(cell.scores)), str(cell.failed), f"{cell.mean:.4f}", f"{cell.std:.4f}",
                         "" if cell.baseline is None else f"{cell.baseline:.4f}",
                         "" if cell.diff is None else f"{cell.diff:.4f}", " ".join(f"{s:.4f}" for s in cell.scores)])
    return rows


def stilt_heatmap(plan: StiltPlan, cells: dict[tuple[str, str | None], Cell], title: str, paths: Sequence[Path]) -> None:
    """The heatmap of `heatmap_figure` as png/svg files."""
    import matplotlib.pyplot as plt

    from blurbkit.fileio import atomic_write

    fig = heatmap_figure(plan.targets, plan.sources, cells, title)
    for path in paths:
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format=path.suffix.lstrip("."), dpi=130)
    plt.close(fig)


def heatmap_figure(targets: Sequence[str], sources: Sequence[str], cells: dict[tuple[str, str | None], Cell],
                   title: str) -> Any:
    """Differences from the baseline: gain blue, loss orange, saturation = size of the change
    (symmetric scale around 0); each cell also shows the score. Rows = targets, columns = the
    intermediate tasks by dataset title; a matplotlib figure (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm

    diffs = np.full((len(targets), len(sources)), np.nan)
    for i, target in enumerate(targets):
        for j, source in enumerate(sources):
            cell = cells.get((target, source))
            if cell is not None and cell.diff is not None and source != target:
                diffs[i, j] = cell.diff
    largest = float(np.nanmax(np.abs(diffs))) if np.isfinite(diffs).any() else 1.0
    largest = max(largest, 0.5)  # a matrix of tiny changes stays pale instead of saturating
    colours = LinearSegmentedColormap.from_list("loss_gain", ["#d95f02", "#ffffff", "#1f5fa8"])
    colours = colours.with_extremes(bad="#dddddd")
    fig, ax = plt.subplots(figsize=(1.5 + 1.25 * len(sources), 1.2 + 0.65 * len(targets)))
    image = ax.imshow(np.ma.masked_invalid(diffs), cmap=colours, norm=TwoSlopeNorm(0.0, -largest, largest), aspect="auto")
    for i, target in enumerate(targets):
        for j, source in enumerate(sources):
            cell = cells.get((target, source))
            if source == target or cell is None:
                ax.text(j, i, "—", ha="center", va="center", color="#666666")
                continue
            diff = "" if cell.diff is None else f"\n{cell.diff:+.1f}"
            strong = cell.diff is not None and abs(cell.diff) > 0.6 * largest
            ax.text(j, i, f"{cell.mean:.1f}{'†' if cell.failed else ''}{diff}", ha="center", va="center", fontsize=8,
                    color="white" if strong else "black")
    base = {t: cells[(t, None)].mean for t in targets if (t, None) in cells}
    ax.set_yticks(range(len(targets)),
                  [f"{get_dataset(t).title} (base {base[t]:.1f})" if t in base else get_dataset(t).title for t in targets])
    ax.set_xticks(range(len(sources)), [get_dataset(s).title for s in sources], rotation=30, ha="right")
    ax.set_xlabel("intermediate task")
    ax.set_ylabel("target task")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="difference from baseline (points)")
    fig.tight_layout()
    return fig


def write_stilt_report(out_dir: Path, name: str, table: str, plan: StiltPlan,
                       cells: dict[tuple[str, str | None], Cell], title: str) -> list[Path]:
    import csv
    import io

    from blurbkit.fileio import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    with atomic_write(written[0]) as handle:
        handle.write(table + "\n")
    buffer = io.StringIO()
    csv.writer(buffer).writerows(stilt_csv(plan, cells))
    with atomic_write(written[1]) as handle:
        handle.write(buffer.getvalue())
    if any(source is not None for _, source in cells):
        pictures = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
        stilt_heatmap(plan, cells, title, pictures)
        written += pictures
    return written


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
