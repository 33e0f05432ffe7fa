"""Runs carried between results stores, for sweeps that ran where no store was shared: machines
without Ray (one store per batch-queue task), or machines that do not keep their disk from one day to
the next. `export` writes a store's runs as JSON lines (text that diffs, and travels in a repository);
`merge` adds the runs of stores or exports to one store, so that a re-run sweep trains only what none
of them holds.

A run is known by its key (`RunKey`), and an export line must carry the key its fields make: an edited
score keeps its key, but an edited dataset, seed or setting would otherwise be counted as the run it
no longer is. Merging never replaces a finished run; a failed one gives way to a finished one.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import parse_jsonl, read_lines
from blurbkit.store.results import COLUMNS, FAILED, OK, ResultsStore, RunKey, check_store, read_rows

_KEY_FIELDS = ("study", "variant", "model", "dataset", "seed", "budget", "hyperparameters")
_TEXT = ("study", "variant", "model", "dataset", "budget", "metric", "hyperparameters", "created_at")
_OPTIONAL_TEXT = ("blurbkit_commit", "run_dir", "error", "precision")
_NUMBERS = ("dev_score", "test_score", "wall_seconds", "train_examples_per_second")
_JSON_COLUMNS = {"dev_metrics": dict, "test_metrics": dict, "notes": list}  # JSON text in the store, objects in an export
PRECISIONS = ("fp32", "bfloat16", "float16")  # as runs name them (runtime.precision.dtype_name)
MAX_SEED = 2**32 - 1  # numpy's seeds (train/config.py)
MAX_THREADS = 1 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"


def key_of(row: dict[str, Any]) -> RunKey:
    return RunKey(*(row[name] for name in _KEY_FIELDS))


def export_records(rows: Iterable[dict[str, Any]], path: str | Path) -> Iterator[dict[str, Any]]:
    """A store's rows as export lines: every column but the local row id, JSON columns as objects."""
    for row in rows:
        record = {name: row.get(name) for name in COLUMNS}
        for name in _JSON_COLUMNS:
            try:
                record[name] = json.loads(record[name]) if record[name] else _JSON_COLUMNS[name]()
            except (TypeError, ValueError):
                raise BlurbkitError(f"run {str(row.get('run_key'))[:12]}: its {name} is not JSON", path=path) from None
        yield record


def _problem(record: dict[str, Any]) -> str | None:
    """Why an export line is not a run (None: it is one)."""
    missing = [name for name in ("run_key", *_KEY_FIELDS, "metric", "status", "created_at") if name not in record]
    if missing:
        return f"not a run: {', '.join(missing)} missing"
    for name in _TEXT + ("run_key",):
        if not isinstance(record[name], str) or not record[name]:
            return f"{name} must be a non-empty string"
    for name in _OPTIONAL_TEXT:
        if record.get(name) is not None and not isinstance(record[name], str):
            return f"{name} must be a string or null"
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool) or not 0 <= record["seed"] <= MAX_SEED:
        return f"seed must be an integer from 0 to {MAX_SEED}"
    for name in _NUMBERS:
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)):
            return f"{name} must be a finite number or null"
    threads = record.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS):
        return f"threads must be an integer from 1 to {MAX_THREADS}, or null"
    if record.get("precision") is not None and record["precision"] not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}, or null"
    for name, kind in _JSON_COLUMNS.items():
        if record.get(name) is not None and not isinstance(record[name], kind):
            return f"{name} must be a JSON {'object' if kind is dict else 'array'}"
    if not all(isinstance(note, str) for note in record.get("notes") or []):
        return "notes must be a list of strings"
    if record["status"] not in (OK, FAILED):
        return f"status must be {OK!r} or {FAILED!r}, not {record['status']!r}"
    if record["run_key"] != key_of(record).digest():
        return "run_key does not match the run's study/variant/model/dataset/seed/budget/hyperparameters (edited?)"
    return None


def _store_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name in COLUMNS}
    for name, kind in _JSON_COLUMNS.items():
        row[name] = json.dumps(record.get(name) or kind())
    return row


def is_store_file(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """The runs of a results store or of an export file, as store rows; a line that is not a run, or a
    run given twice with different contents, is one BlurbkitError naming the file and line."""
    path = Path(path)
    if path.is_file() and is_store_file(path):  # checked as an export's lines are: the two routes agree
        records: Iterable[tuple[int | None, dict[str, Any]]] = ((None, r) for r in export_records(read_rows(path), path))
    elif path.is_file() and path.suffix.lower() in SQLITE_SUFFIXES:  # read as JSON lines it would fail on a binary byte, misleadingly
        raise BlurbkitError("not an SQLite results store (nor an export file: those are JSON lines)", path=path)
    else:
        records = parse_jsonl(read_lines(path), path)
    rows: dict[str, tuple[int | None, dict[str, Any]]] = {}
    for line, record in records:
        problem = _problem(record)
        if problem:
            where = "" if line is not None else f"run {str(record.get('run_key'))[:12]}: "
            raise BlurbkitError(where + problem, path=path, line=line)
        row = _store_row(record)
        first = rows.setdefault(row["run_key"], (line, row))
        if first[1] != row:
            where = f" (first on line {first[0]})" if line is not None else ""
            raise BlurbkitError(f"run {row['run_key'][:12]} is given twice with different contents{where}", path=path, line=line)
    return [row for _, row in rows.values()]


def relabel(rows: list[dict[str, Any]], old: str, new: str) -> int:
    """Give the runs of model `old` the store name `new` (a model directory at another path on
    this machine), with the key that name makes. Returns how many runs were renamed."""
    count = 0
    for row in rows:
        if row["model"] == old:
            row["model"] = new
            row["run_key"] = key_of(row).digest()
            count += 1
    return count


@dataclass
class MergeCounts:
    added: int = 0  # runs the store did not have
    replaced: int = 0  # failed runs of the store that a finished run of the sources replaced
    kept: int = 0  # runs the store had already (a finished run, or failed in both)

    def summary(self) -> str:
        return (f"{self.added} run(s) added, {self.replaced} failed run(s) replaced by finished ones, "
                f"{self.kept} already there")


def merge_counts(existing: dict[str, str], rows: Iterable[dict[str, Any]]) -> tuple[MergeCounts, list[dict[str, Any]]]:
    """What merging `rows` into a store whose runs have the statuses `existing` (run_key -> status)
    does: the counts (one per run, however many sources hold it), and the rows to write. A finished
    run wins over a failed one; among rows of the same status the first one stays."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = best.get(row["run_key"])
        if held is None or (held["status"] == FAILED and row["status"] == OK):
            best[row["run_key"]] = row
    counts, chosen = MergeCounts(), []
    for key, row in best.items():
        before = existing.get(key)
        if before is None:
            counts.added += 1
        elif before == FAILED and row["status"] == OK:
            counts.replaced += 1
        else:
            counts.kept += 1
            continue
        chosen.append(row)
    return counts, chosen


def merge_into(into: str | Path, rows: list[dict[str, Any]]) -> MergeCounts:
    """Merge checked `rows` into the store at `into` (created if absent) in one transaction. If it
    fails, nothing is merged and a store this call created is removed again."""
    into = Path(into)
    check_store(into)
    created = not into.exists()
    store = ResultsStore(into)
    try:
        counts = store.merge(rows, merge_counts)
    except BaseException as err:  # the transaction rolled back
        store.close()
        if created:  # no empty store left behind
            for leftover in (into, Path(f"{into}-wal"), Path(f"{into}-shm")):
                leftover.unlink(missing_ok=True)
        if isinstance(err, sqlite3.Error | OverflowError):  # every row was checked: a fault of the disk or the file
            raise BlurbkitError(f"nothing merged ({err})", path=into) from None
        raise
    store.close()
    return counts
