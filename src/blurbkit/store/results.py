"""The results store: one SQLite row per fine-tuning run (standard library, one file).

Re-running a benchmark skips runs whose key is already stored. Writes are single
transactions, so an interrupted or failed run never leaves a partial row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    study TEXT NOT NULL,
    variant TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    budget TEXT NOT NULL,
    metric TEXT NOT NULL,
    dev_score REAL,
    test_score REAL,
    hyperparameters TEXT NOT NULL,
    dev_metrics TEXT NOT NULL,
    test_metrics TEXT NOT NULL,
    wall_seconds REAL,
    train_examples_per_second REAL,
    blurbkit_commit TEXT,
    run_dir TEXT,
    notes TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_study ON runs (study, model, dataset);
"""


@dataclass(frozen=True)
class RunKey:
    """What makes two runs the same run: change any field and it is a new run."""

    study: str
    variant: str
    model: str
    dataset: str
    seed: int
    budget: str
    hyperparameters: str  # canonical JSON

    def digest(self) -> str:
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class ResultsStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0)
            self._db.row_factory = sqlite3.Row
            with self._write():
                self._db.executescript(_SCHEMA)
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row["value"]) > SCHEMA_VERSION:
                    raise BlurbkitError(
                        f"results store has schema version {row['value']}, newer than this blurbkit's {SCHEMA_VERSION}; upgrade blurbkit",
                        path=self.path,
                    )
        except sqlite3.DatabaseError as err:
            raise BlurbkitError(f"cannot open the results store ({err})", path=self.path) from None

    @contextmanager
    def _write(self) -> Iterator[None]:
        try:
            with self._db:  # one transaction: committed whole or rolled back
                yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                raise BlurbkitError("results store is locked by another process; try again when it finishes", path=self.path) from None
            raise BlurbkitError(f"results store error ({err})", path=self.path) from None

    def has(self, key: RunKey) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE run_key = ?", (key.digest(),)).fetchone() is not None

    def add(self, key: RunKey, metrics: dict[str, Any], commit: str, run_dir: str | None, replace: bool = False) -> None:
        test, dev = dict(metrics["test"]), dict(metrics["dev"])
        row = (
            key.digest(), key.study, key.variant, key.model, key.dataset, key.seed, key.budget, metrics["metric"],
            dev.get("score"), test.get("score"), key.hyperparameters, json.dumps(dev), json.dumps(test),
            metrics.get("wall_seconds"), metrics.get("train_examples_per_second"), commit, run_dir,
            json.dumps(metrics.get("notes", [])), time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with self._write():
            self._db.execute(f"{verb} INTO runs (run_key, study, variant, model, dataset, seed, budget, metric, dev_score, "
                             "test_score, hyperparameters, dev_metrics, test_metrics, wall_seconds, "
                             "train_examples_per_second, blurbkit_commit, run_dir, notes, created_at) "
                             "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def rows(self, study: str | None = None, model: str | None = None, budget: str | None = None) -> list[dict[str, Any]]:
        query, params = "SELECT * FROM runs WHERE 1=1", []
        for column, value in (("study", study), ("model", model), ("budget", budget)):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        return [dict(row) for row in self._db.execute(query + " ORDER BY id", params)]

    def close(self) -> None:
        self._db.close()
