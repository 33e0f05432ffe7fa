"""Benchmark runs: every dataset x seed through the engine, stored in the results store, then
summarised as mean ± std per dataset, per task type and the BLURB score beside the papers."""

from __future__ import annotations

import json
import statistics
import sys
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.data.prepare import DEVIATION
from blurbkit.errors import BlurbkitError
from blurbkit.experiments.run_records import finished_run, mixed_precision_note, run_key
from blurbkit.metrics.seeds import sample_std
from blurbkit.store.labels import store_label
from blurbkit.store.results import ALREADY_STORED, ResultsStore, RunKey
from blurbkit.tasks.blurb_score import blurb_groups
from blurbkit.tasks.registry import blurb_datasets, get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.provenance import blurbkit_commit

if TYPE_CHECKING:
    from blurbkit.experiments.executors import Executor


def budget_profile(name: str, dataset: str) -> dict[str, Any]:
    text = resources.files("blurbkit.tasks").joinpath("budgets.toml").read_text("utf-8")
    profiles = tomllib.loads(text)
    if name not in profiles:
        raise BlurbkitError(f"unknown budget profile {name!r}")
    return profiles[name].get("default", {}) | profiles[name].get(dataset, {})


def reference_results() -> dict[str, dict[str, float]]:
    text = resources.files("blurbkit.tasks").joinpath("reference.toml").read_text("utf-8")
    return tomllib.loads(text)["models"]


def resolve_datasets(names: str | Sequence[str]) -> list[str]:
    if names == "all" or names == ["all"]:
        return [spec.name for spec in blurb_datasets()]
    items = names.split(",") if isinstance(names, str) else list(names)
    chosen = [get_dataset(name.strip()).name for name in items if name.strip()]
    if not chosen:
        raise BlurbkitError(f"no dataset named in {names!r}")
    repeated = sorted({name for name in chosen if chosen.count(name) > 1})
    if repeated:  # an alias and its name, or a typo'd list: its runs would be counted and run twice
        raise BlurbkitError(f"--datasets names {', '.join(repeated)} more than once")
    return chosen


# Options that subsample the data: a run with any of them is a budget run, whatever else it sets.
BUDGET_FLAGS = {"max_train_examples": "train", "max_eval_examples": "dev", "max_test_examples": "test"}


def budget_name(quick: bool, options: Any) -> str:
    """The budget label of a grid (header, table footer, report name and the store's `budget`
    column): 'full'; 'quick'; explicit subsample flags 'custom-train16-dev8-test24'; both 'quick+train16'."""
    flags = "-".join(f"{short}{getattr(options, name)}" for name, short in BUDGET_FLAGS.items()
                     if getattr(options, name, None) is not None)
    if quick:
        return f"quick+{flags}" if flags else "quick"
    return f"custom-{flags}" if flags else "full"


def apply_budget(config: FinetuneConfig, budget: dict[str, Any]) -> FinetuneConfig:
    """Budget values fill only what the user did not set explicitly."""
    updates = {key: value for key, value in budget.items() if getattr(config, key, None) is None}
    return config.replace(**updates)


def model_label(model: str | None) -> str:
    """The store's name for an encoder: the embedded default, or the model directory's absolute path."""
    return store_label(model)


def checked(configs: Iterable[tuple[str, FinetuneConfig]]) -> list[tuple[str, FinetuneConfig]]:
    """The grid as a list, every run's settings resolved against its dataset's recipe first: a value
    wrong for one dataset only (--min-epochs above its epochs) stops the grid before any training."""
    configs = list(configs)
    for _, config in configs:
        config.hyper.resolved(get_dataset(config.dataset))
    return configs


# Runs that become possible while a grid runs (the search study's test seeds once a dataset's
# selection runs are all stored): asked after each run of the grid, with the run keys (digests) still
# queued or running in it, so that a stored row this grid is about to replace (--force, a failed run
# tried again) is not taken for the new one.
FollowUp = Callable[[set[str]], Sequence[tuple[str, FinetuneConfig]]]


@dataclass
class Benchmark:
    store: ResultsStore
    runs_dir: Path | None
    study: str = "benchmark"
    force: bool = False
    keep_going: bool = False
    failures: list[str] = field(default_factory=list)
    say: Callable[[str], None] | None = None  # where progress lines go (default stderr; a progress bar's writer)
    # None: the runs go one after another in this process. An executor (experiments/executors.py: the
    # local process pool or Ray) runs them at once through experiments/grid_sweep.py, with the same keys
    # and run directories; it is closed when `run` / `run_all` returns (one call per executor).
    executor: Executor | None = None
    threads: int = 1  # torch threads (Ray: CPUs) per run on the executor
    retries: int = 2  # a run that crashed on the executor is tried again this many times
    progress: bool = True  # the executor's bar over the grid

    def _say(self, text: str) -> None:
        if self.say is not None:
            self.say(text)
        else:
            print(text, file=sys.stderr)

    def run_dir(self, variant: str, config: FinetuneConfig, key: RunKey) -> Path | None:
        """Where the run of `key` is written (None without --runs-dir); experiments that reuse a run's
        model (STILT) find it here."""
        if self.runs_dir is None:
            return None
        # The key's digest keeps runs of other models, budgets or settings out of each other's directories.
        return self.runs_dir / self.study / variant / config.dataset / f"seed{config.seed}-{key.digest()[:10]}"

    def run(self, configs: Iterable[tuple[str, FinetuneConfig]], model_label: str, budget: str,
            follow_up: FollowUp | None = None) -> None:
        """Train and store every run not stored yet. Each run is claimed in the store first, so
        several processes on one store split the grid: a run stored or being trained by another
        live process is skipped here. `follow_up` is asked after each run for runs that may start now
        (each returned once); they go ahead of the rest of the grid."""
        configs = checked(configs)
        if self.executor is not None:
            from blurbkit.experiments.grid_sweep import GridSweep

            def labelled(pending: set[str]) -> list[tuple[str, FinetuneConfig, str]]:
                return [(variant, config, model_label) for variant, config in follow_up(pending)] if follow_up else []

            GridSweep(self).run([(variant, config, model_label) for variant, config in configs], budget,
                                labelled if follow_up else None)
            return
        self._run_here(configs, model_label, budget, follow_up)

    def run_all(self, grids: Iterable[tuple[Iterable[tuple[str, FinetuneConfig]], str]], budget: str) -> None:
        """`run` over several grids, each (configs, model label), in order; on an executor all at once."""
        grids = [(checked(configs), label) for configs, label in grids]
        if self.executor is not None:
            from blurbkit.experiments.grid_sweep import GridSweep

            GridSweep(self).run([(variant, config, label) for configs, label in grids for variant, config in configs], budget)
            return
        for configs, label in grids:
            self._run_here(configs, label, budget)

    def _run_here(self, configs: Iterable[tuple[str, FinetuneConfig]], model_label: str, budget: str,
                  follow_up: FollowUp | None = None) -> None:
        commit = blurbkit_commit()
        pending = deque((variant, config, run_key(self.study, variant, config, model_label, budget).digest())
                        for variant, config in configs)
        while pending:
            variant, config, _ = pending.popleft()
            self._run_one(variant, config, model_label, budget, commit)
            if follow_up is not None:
                new = [(v, c, run_key(self.study, v, c, model_label, budget).digest())
                       for v, c in follow_up({digest for _, _, digest in pending})]
                pending.extendleft(reversed(new))

    def _run_one(self, variant: str, config: FinetuneConfig, model_label: str, budget: str, commit: str) -> None:
        from blurbkit.train.run import run_finetune

        key = run_key(self.study, variant, config, model_label, budget)
        what = f"{config.dataset} seed {config.seed} [{variant}]"
        why_not = self.store.claim(key, force=self.force)
        if why_not is not None:
            hint = " (--force re-runs)" if why_not == ALREADY_STORED else ""
            self._say(f"blurbkit: {what} {why_not}; skipped{hint}")
            return
        out = self.run_dir(variant, config, key)
        # A run killed earlier continues from its checkpoint in `out` (--force starts it over).
        config = config.replace(out=out, overwrite=True, resume=not self.force)
        run_commit = commit
        metrics = None if self.force else finished_run(out)
        if metrics is not None:
            run_commit = metrics.pop("_blurbkit_commit", None) or commit
            self._say(f"blurbkit: {what} was trained before but not stored; storing its result from {out}")
        else:
            try:
                with self.store.heartbeat(key):
                    metrics = run_finetune(config)
            except BaseException as err:
                if not isinstance(err, BlurbkitError) or not self.keep_going:
                    self.store.release(key)
                    raise
                self.failures.append(f"{what}: {err}")
                self._say(f"blurbkit: error: {config.dataset}: {err}")
                # In the store as failed (tables count it; the next benchmark tries it again).
                try:
                    self.store.add_failed(key, get_dataset(config.dataset).metric, str(err), commit, str(out) if out else None)
                except BlurbkitError:
                    self.store.release(key)
                return
        try:
            stored = self.store.add(key, metrics, run_commit, str(out) if out else None, replace=self.force)
        except BlurbkitError as err:
            # The run itself is done: its directory keeps the result, and the next benchmark over
            # this store picks it up from there instead of training again.
            where = f"its result is in {out}" if out else "it has no run directory (no --runs-dir)"
            message = f"{what} finished but is not stored ({err}); {where}"
            if not self.keep_going:
                raise BlurbkitError(message) from None
            self.failures.append(message)
            self._say(f"blurbkit: error: {message}")
            return
        where = f" ({out})" if out else ""
        also = "" if stored else "; another process had stored the same run, its row is kept"
        self._say(f"blurbkit: {what} test {metrics['metric']} = {100 * metrics['test']['score']:.2f}{where}{also}")

    def rows_for(self, configs: Iterable[tuple[str, FinetuneConfig]], model_label: str, budget: str) -> list[dict[str, Any]]:
        """The stored rows of exactly these runs: the store also keeps runs of other settings or budgets."""
        keys = {run_key(self.study, variant, config, model_label, budget).digest() for variant, config in configs}
        return [r for r in self.store.rows(study=self.study, model=model_label, budget=budget) if r["run_key"] in keys]


def failed_runs(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """variant -> dataset -> how many of `rows` are failed runs (status 'failed')."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("status", "ok") != "ok":
            per = counts.setdefault(row["variant"], {})
            per[row["dataset"]] = per.get(row["dataset"], 0) + 1
    return counts


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """(variant, dataset) -> mean, std (sample), n, and the notes of those runs; scores in %.
    Failed runs are not in it (see `failed_runs`)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status", "ok") == "ok":
            grouped.setdefault((row["variant"], row["dataset"]), []).append(row)
    summary: dict[str, dict[str, Any]] = {}
    for (variant, dataset), items in grouped.items():
        scores = [100 * r["test_score"] for r in items]
        notes = sorted({note for r in items for note in json.loads(r["notes"] or "[]")})
        mixed = mixed_precision_note(items)
        if mixed:
            notes.append(mixed)
        summary.setdefault(variant, {})[dataset] = {
            "mean": statistics.fmean(scores),
            "std": sample_std(scores),
            "n": len(scores),
            "wall_seconds": sum(r["wall_seconds"] or 0 for r in items),
            "notes": notes,
        }
    return summary


def blurb_table(per_dataset: dict[str, dict[str, Any]], label: str, budget: str, failed: dict[str, int] | None = None) -> str:
    """Rows = datasets, then task-type averages and the BLURB score; reference columns beside.
    `failed`: dataset -> failed runs, counted in the cell (not in its mean)."""
    failed = failed or {}
    references = reference_results()
    columns = [label, *references]
    lines = [f"| dataset | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    group_means: dict[str, float] = {}
    complete = True
    for group, names in blurb_groups().items():
        values = []
        for name in names:
            cell = per_dataset.get(name)
            lost = f", {failed[name]} failed" if failed.get(name) else ""
            ours = f"{cell['mean']:.2f} ± {cell['std']:.2f} (n={cell['n']}{lost})" if cell else f"— ({failed[name]} failed)" if lost else "—"
            if cell:
                values.append(cell["mean"])
            refs = " | ".join(f"{references[m][name]:.2f}" for m in references)
            title = get_dataset(name).title + (f" ({DEVIATION})" if cell and deviates(cell) else "")
            lines.append(f"| {title} | {ours} | {refs} |")
        if len(values) == len(names):
            group_means[group] = statistics.fmean(values)
        else:
            complete = False
    lines.append("|---" * (len(columns) + 1) + "|")
    for group, names in blurb_groups().items():
        ours = f"{group_means[group]:.2f}" if group in group_means else "—"
        refs = " | ".join(f"{statistics.fmean(references[m][n] for n in names):.2f}" for m in references)
        lines.append(f"| *{group}* | {ours} | {refs} |")
    deviating = [get_dataset(name).title for name, cell in per_dataset.items() if deviates(cell)]
    score = f"**{statistics.fmean(group_means.values()):.2f}**" if complete else "— (needs all 13)"
    if complete and deviating:
        score += f" (with the {DEVIATION} of {', '.join(deviating)})"
    lost = {get_dataset(name).title: n for name, n in failed.items() if n}
    if complete and lost:
        score += f" (failed runs left out of the means: {', '.join(f'{t} {n}' for t, n in lost.items())})"
    refs = " | ".join(f"**{references[m]['blurb']:.2f}**" for m in references)
    lines.append(f"| **BLURB score** | {score} | {refs} |")
    lines.append("")
    lines.append("Cells: test mean ± sample std (n-1) over the seeds that finished (n); a failed run (an error, e.g. a "
                 "diverged loss) is counted beside the mean, not in it.")
    if budget != "full":
        lines.append("")
        lines.append(f"BUDGET RUN ({budget}): small training subsets and few epochs on CPU; not comparable to the papers' numbers.")
    if deviating:
        lines.append("")
        lines.append(f"{DEVIATION}: {', '.join(deviating)} not trained or scored on the published data (the notes say how); "
                     "not comparable with the published columns.")
    return "\n".join(lines)


def deviates(cell: dict[str, Any]) -> bool:
    """The runs of a table cell were trained or scored on data that differ from BLURB's (their notes say so)."""
    return any(DEVIATION in note for note in cell.get("notes", []))
