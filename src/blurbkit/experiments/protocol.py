"""The full BLURB fine-tuning protocol (SPEC §2) as data: per dataset, the grid of tasks/grids.toml
(learning rates x batch sizes x epoch options) x a few selection seeds on dev, the point with the
best mean dev score, then the dataset's test seeds on that point, reported as test mean ± std.

This module only says *which* runs there are and which point wins; experiments/sweep.py runs them.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig

STUDY, VARIANT = "protocol", "grid"  # the store's study/variant of every protocol run

# --grid names -> (grids.toml key, type)
GRID_KEYS: dict[str, tuple[str, type]] = {
    "lr": ("lr", float), "bs": ("batch_size", int), "batch_size": ("batch_size", int),
    "epochs": ("epochs", int), "select": ("selection_seeds", int), "selection_seeds": ("selection_seeds", int),
}
LISTS = ("lr", "batch_size", "epochs")


@dataclass(frozen=True)
class Grid:
    lr: tuple[float, ...]
    batch_size: tuple[int, ...]
    epochs: tuple[int, ...]
    selection_seeds: int

    def points(self) -> list[dict[str, Any]]:
        """Every (lr, batch_size, epochs) in a fixed order (ties in dev score go to the first)."""
        return [{"lr": lr, "batch_size": bs, "epochs": ep}
                for lr, bs, ep in itertools.product(self.lr, self.batch_size, self.epochs)]


def _number(text: str, kind: type, where: str) -> float | int:
    try:
        value = float(text) if kind is float else int(text)
    except ValueError:
        raise BlurbkitError(f"{where}: {text!r} is not {'a number' if kind is float else 'a whole number'}") from None
    if not math.isfinite(value) or value <= 0:
        raise BlurbkitError(f"{where}: {text!r} must be positive")
    return value


def parse_grid(text: str | None) -> dict[str, Any]:
    """`lr=1e-5,3e-5;bs=16,32;epochs=3;select=2` -> grids.toml keys (checked, nothing else)."""
    out: dict[str, Any] = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        name, sep, values = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in GRID_KEYS:
            raise BlurbkitError(f"--grid {part.strip()!r}: expected NAME=V1,V2 with NAME one of {', '.join(GRID_KEYS)}")
        key, kind = GRID_KEYS[name]
        if key in out:  # lr twice, or bs and batch_size: the later one would silently win
            raise BlurbkitError(f"--grid {part.strip()!r}: {key} is already given; list its values once (e.g. lr=1e-5,3e-5)")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise BlurbkitError(f"--grid {name}: no values")
        numbers = [_number(v, kind, f"--grid {name}") for v in items]
        if key in LISTS:
            out[key] = tuple(dict.fromkeys(numbers))
        elif len(numbers) != 1:
            raise BlurbkitError(f"--grid {name}: one value, not {len(numbers)}")
        else:
            out[key] = numbers[0]
    if text is not None and not out:  # ';;;' or '': an override that overrides nothing
        raise BlurbkitError(f"--grid {text!r}: names no grid key (expected e.g. 'lr=1e-5,3e-5;bs=16,32')")
    return out


def grid_tables() -> dict[str, Any]:
    text = resources.files("blurbkit.tasks").joinpath("grids.toml").read_text("utf-8")
    return tomllib.loads(text)


def grid_for(dataset: str, overrides: dict[str, Any] | None = None, protocol: str = "full") -> Grid:
    tables = grid_tables()
    if protocol not in tables:
        raise BlurbkitError(f"unknown protocol {protocol!r} in grids.toml (known: {', '.join(tables)})")
    table = tables[protocol].get("default", {}) | tables[protocol].get(dataset, {}) | (overrides or {})
    try:
        return Grid(tuple(float(v) for v in table["lr"]), tuple(int(v) for v in table["batch_size"]),
                    tuple(int(v) for v in table["epochs"]), int(table["selection_seeds"]))
    except KeyError as err:
        raise BlurbkitError(f"grids.toml [{protocol}]: no {err.args[0]!r} for {dataset}") from None


@dataclass(frozen=True)
class DatasetProtocol:
    """One dataset's search and test runs, built on `base` (data, model, budget, parts...)."""

    dataset: str
    grid: Grid
    test_seeds: int
    base: FinetuneConfig

    @classmethod
    def make(cls, base: FinetuneConfig, overrides: dict[str, Any] | None = None, test_seeds: int | None = None,
             protocol: str = "full") -> DatasetProtocol:
        """protocol: the grids.toml table ("full"; "quick" around the budget runs' recipe)."""
        spec = get_dataset(base.dataset)
        return cls(spec.name, grid_for(spec.name, overrides, protocol), test_seeds or spec.seeds, base)

    def config(self, point: dict[str, Any], seed: int) -> FinetuneConfig:
        return self.base.replace(seed=seed, **point)

    def selection_runs(self) -> list[FinetuneConfig]:
        # Seed-major: every point's first seed before any second one, so a sweep stopped part-way
        # (a session's end, a reclaimed node) has seen the whole grid once, not a corner of it three times.
        return [self.config(p, s) for s in range(self.grid.selection_seeds) for p in self.grid.points()]

    def test_runs(self, point: dict[str, Any]) -> list[FinetuneConfig]:
        """The test seeds on the chosen point (its first seeds are search runs already)."""
        return [self.config(point, s) for s in range(self.test_seeds)]

    def run_count(self) -> int:
        points = len(self.grid.points())
        return points * self.grid.selection_seeds + max(0, self.test_seeds - self.grid.selection_seeds)


def point_of(config: FinetuneConfig) -> dict[str, Any]:
    return {"lr": config.lr, "batch_size": config.batch_size, "epochs": config.epochs}


def choose(protocol: DatasetProtocol, dev_scores: dict[str, list[float]],
           errored: dict[str, int] | None = None) -> tuple[dict[str, Any], float] | None:
    """The point with the best mean dev score (`dev_scores`: point JSON -> scores of its finished
    search runs), and that mean; None when no point has a finished run. A point with a selection
    run that errored (`errored`: point JSON -> count; a diverged loss, mostly at the largest
    learning rate) ranks below every point whose runs all finished: its mean over the seeds that
    survived would flatter the least stable point. Ties go to the first point in grid order."""
    best, best_rank = None, None
    for point in protocol.grid.points():
        key = json.dumps(point, sort_keys=True)
        scores = dev_scores.get(key)
        if not scores:
            continue
        rank = (not (errored or {}).get(key), statistics.fmean(scores))
        if best_rank is None or rank > best_rank:
            best, best_rank = (point, rank[1]), rank
    return best


SELECTION_RULE = ("dev = mean over the selection seeds of the chosen point; a point with an errored selection run "
                  "ranks below every complete point; ties go to the first point in grid order (the order of "
                  "tasks/grids.toml or --grid); the chosen point's first test seeds are its selection runs (tasks/grids.toml); "
                  "test = mean ± sample std (n-1) over the test seeds that finished, failed runs counted beside")


def chosen_table(chosen: dict[str, tuple[dict[str, Any], float]], per_dataset: dict[str, dict[str, Any]],
                 failed: dict[str, int] | None = None) -> str:
    """Per dataset: the configuration picked on dev, its mean dev score and the test mean ± std."""
    failed = failed or {}
    lines = ["| dataset | lr | batch | epochs | dev (search mean) | test mean ± std (n) |", "|---|---|---|---|---|---|"]
    for name, (point, dev) in chosen.items():
        cell = per_dataset.get(name)
        lost = f", {failed[name]} failed" if failed.get(name) else ""
        test = f"{cell['mean']:.2f} ± {cell['std']:.2f} (n={cell['n']}{lost})" if cell else f"—{lost}"
        lines.append(f"| {get_dataset(name).title} | {point['lr']:g} | {point['batch_size']} | {point['epochs']} "
                     f"| {100 * dev:.2f} | {test} |")
    return "\n".join([*lines, "", SELECTION_RULE + "."])


def describe(protocols: Sequence[DatasetProtocol]) -> str:
    parts = []
    for p in protocols:
        g = p.grid
        parts.append(f"{p.dataset}: lr {'/'.join(f'{v:g}' for v in g.lr)} x bs {'/'.join(map(str, g.batch_size))} x "
                     f"epochs {'/'.join(map(str, g.epochs))} x {g.selection_seeds} seeds, then {p.test_seeds} test seeds")
    return "\n".join(parts)
