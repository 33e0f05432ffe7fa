"""The results store: one SQLite row per fine-tuning run (standard library, one file).

Re-running a benchmark skips runs whose key is already stored. Several processes may share one
store (e.g. three `blurbkit benchmark` commands over the same grid):

- the database is in WAL mode (readers never wait for the writer, and never see half a
  transaction) with a generous busy timeout, and every write is one short transaction;
- storing a run is idempotent: a run another process stored first is not an error;
- a process claims a run before training it (table `claims`: pid, host, heartbeat), so concurrent
  processes split a grid instead of all training the same runs; the claim of a process that died
  is taken over (same host: its pid is gone; any host: no heartbeat for STALE_AFTER seconds);
- a writer that finds the store locked retries with backoff for up to `lock_wait` seconds
  (10 minutes by default) before it gives up with a BlurbkitError.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from blurbkit.errors import BlurbkitError

# 1: runs and claims (claims: an addition older blurbkits ignore). 2: runs.status and runs.error,
# for runs that failed (--keep-going); older blurbkits would read those as results, so they refuse it.
# runs.threads (the torch threads a run's speeds were measured at) and runs.precision (the dtype it
# computed in: bf16 and fp32 runs of one key differ in their last digits) are additions like claims:
# a version-2 blurbkit writes NULL there and reads past them, so the version stays 2.
SCHEMA_VERSION = 2

LOCK_WAIT = 600.0  # seconds a write keeps retrying a locked store before giving up
BUSY_TIMEOUT = 30.0  # seconds SQLite itself waits for a lock, per attempt
HEARTBEAT = 30.0  # seconds between heartbeats of a claim while its run trains
STALE_AFTER = 300.0  # a claim without a heartbeat for this long belongs to a dead process

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
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
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok',
    error TEXT,
    threads INTEGER,
    precision TEXT
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_study ON runs (study, model, dataset)",
    """CREATE TABLE IF NOT EXISTS claims (
    run_key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    heartbeat REAL NOT NULL
)""",
)

_COLUMNS = ("run_key, study, variant, model, dataset, seed, budget, metric, dev_score, test_score, hyperparameters, "
            "dev_metrics, test_metrics, wall_seconds, train_examples_per_second, blurbkit_commit, run_dir, notes, created_at, "
            "status, error, threads, precision")
COLUMNS = tuple(c.strip() for c in _COLUMNS.split(","))  # every column but the local row id
_UPDATE_ALL = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "run_key")

OK, FAILED = "ok", "failed"  # runs.status

T = TypeVar("T")

ALREADY_STORED = "already stored"  # ResultsStore.claim: the run needs no training


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


class StoreLockedError(BlurbkitError):
    """The store stayed locked by another process for longer than the store's lock_wait."""


def _is_lock(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    if pid <= 0:  # 0 and negatives name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


_KEY_COLUMNS = ("run_key", "study", "variant", "model", "dataset", "seed", "budget", "hyperparameters")


def foreign_database(db: sqlite3.Connection) -> str | None:
    """Why a SQLite database is another program's, not a blurbkit store (None: a store, or empty).
    Another program's `runs` table (MLflow has one) must not be read as runs, nor written into."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "runs" not in tables:
        foreign = sorted(tables - {"meta", "claims"})
        return f"not a blurbkit results store (its tables: {', '.join(foreign[:5])})" if foreign else None
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    missing = [c for c in _KEY_COLUMNS if c not in columns]
    return f"not a blurbkit results store (its runs table has no {', '.join(missing)})" if missing else None


def check_store(path: str | Path) -> None:
    """Before long work whose rows go to `path`: an existing store must open (a store, not newer
    than this blurbkit); a new one must be writable there. Nothing is created yet, so a command
    refused later (a model that does not load) leaves no empty store behind."""
    from blurbkit.fileio import check_writable

    path = Path(path)
    if path.exists():
        ResultsStore(path).close()
    else:
        check_writable(path, "results store", file=True)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every run of a store, read-only (reports: never writes, never creates, works beside a live
    writer). A version-1 store's rows read as finished; a newer schema, a file that is no SQLite
    store or no store at all is one BlurbkitError line. A store without runs gives []."""
    path = Path(path)
    if not path.is_file():
        raise BlurbkitError("a directory, not a results store file" if path.is_dir() else "no results store here (file not found)",
                            path=path)
    rows: list[dict[str, Any]] = []
    for uri in (f"file:{path.resolve()}?mode=ro", f"file:{path.resolve()}?immutable=1"):
        try:
            db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
        except sqlite3.Error as err:
            problem = err
            continue
        try:
            db.row_factory = sqlite3.Row
            tables = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" in tables:
                version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if version is not None and int(version["value"]) > SCHEMA_VERSION:
                    raise BlurbkitError(f"results store has schema version {version['value']}, newer than this "
                                        f"blurbkit's {SCHEMA_VERSION}; upgrade blurbkit", path=path)
            foreign = foreign_database(db)
            if foreign:  # another program's database, given by mistake
                raise BlurbkitError(foreign, path=path)
            if "runs" not in tables:
                return []
            rows = [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")]
            for row in rows:
                row.setdefault("status", OK)
                row.setdefault("error", None)
                row.setdefault("threads", None)
                row.setdefault("precision", None)
            return rows
        except (sqlite3.DatabaseError, ValueError) as err:
            problem = err
            if "unable to open" not in str(err):
                break
        finally:
            db.close()
    raise BlurbkitError(f"not a readable results store ({problem})", path=path)


def read_claims(path: str | Path) -> list[dict[str, Any]]:
    """The claims of a store, read-only (run_key, pid, host, claimed_at, heartbeat); [] when the
    store has none or cannot be read (a status display, not a decision)."""
    try:
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error:
        return []
    try:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT run_key, pid, host, claimed_at, heartbeat FROM claims")]
    except sqlite3.Error:
        return []
    finally:
        db.close()


def claim_is_live(claim: dict[str, Any], host: str, now: float) -> bool:
    """A claim held by a process that still runs (known on its own host) and beats."""
    if claim["host"] == host and not pid_alive(claim["pid"]):
        return False
    return now - claim["heartbeat"] < STALE_AFTER


class ResultsStore:
    def __init__(self, path: str | Path, lock_wait: float = LOCK_WAIT) -> None:
        self.path = Path(path)
        self.lock_wait = lock_wait
        self.token = uuid.uuid4().hex  # this store object's claims
        self.host = socket.gethostname()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
            self._retry(self._open)
        except sqlite3.DatabaseError as err:
            raise BlurbkitError(f"cannot open the results store ({err})", path=self.path) from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every write is an explicit BEGIN IMMEDIATE.
        db = sqlite3.connect(self.path, timeout=min(BUSY_TIMEOUT, max(self.lock_wait, 0.1)),
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _open(self) -> None:
        foreign = foreign_database(self._db)
        if foreign:  # nothing written into another program's database, not even its journal mode
            raise BlurbkitError(foreign, path=self.path)
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")  # stays set in the file; a no-op where WAL is unsupported

        def create(db: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row["value"]) > SCHEMA_VERSION:
                raise BlurbkitError(
                    f"results store has schema version {row['value']}, newer than this blurbkit's {SCHEMA_VERSION}; upgrade blurbkit",
                    path=self.path,
                )
            columns = {r["name"] for r in db.execute("PRAGMA table_info(runs)")}
            if "status" not in columns:  # a version-1 store: every row in it is a finished run
                db.execute("ALTER TABLE runs ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'")
                db.execute("ALTER TABLE runs ADD COLUMN error TEXT")
            if "threads" not in columns:  # a store from before the runs' thread counts were kept
                db.execute("ALTER TABLE runs ADD COLUMN threads INTEGER")
            if "precision" not in columns:  # ... or their precisions
                db.execute("ALTER TABLE runs ADD COLUMN precision TEXT")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

        self._transaction(create)

    # -- locking -------------------------------------------------------------------------------

    def _retry(self, action: Callable[[], T], wait: float | None = None) -> T:
        """Run `action`, retrying with backoff while another process holds the lock, up to `wait`
        (default lock_wait) seconds."""
        wait = self.lock_wait if wait is None else wait
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            try:
                return action()
            except sqlite3.OperationalError as err:
                if not _is_lock(err):
                    raise BlurbkitError(f"results store error ({err})", path=self.path) from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreLockedError(
                        f"results store stayed locked by another process for {wait:.0f} s ({err})", path=self.path
                    ) from None
                time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, 5.0)

    def _transaction(self, body: Callable[[sqlite3.Connection], T], wait: float | None = None) -> T:
        """`body` in one write transaction (committed whole or rolled back), retried while locked."""

        def attempt() -> T:
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock on upgrading a read
            try:
                result = body(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
            return result

        return self._retry(attempt, wait)

    # -- runs ----------------------------------------------------------------------------------

    def has(self, key: RunKey) -> bool:
        """Whether the run is stored as finished (a failed run is not: it is tried again)."""
        query = "SELECT 1 FROM runs WHERE run_key = ? AND status = 'ok'"
        return self._retry(lambda: self._db.execute(query, (key.digest(),)).fetchone()) is not None

    def add(self, key: RunKey, metrics: dict[str, Any], commit: str, run_dir: str | None, replace: bool = False) -> bool:
        """Store one run (and drop this process's claim on it) in one transaction. Returns whether
        this call stored it: False when another process had stored the same run (not an error).
        A failed run of the same key is replaced."""
        test, dev = dict(metrics["test"]), dict(metrics["dev"])
        row = (
            key.digest(), key.study, key.variant, key.model, key.dataset, key.seed, key.budget, metrics["metric"],
            dev.get("score"), test.get("score"), key.hyperparameters, json.dumps(dev), json.dumps(test),
            metrics.get("wall_seconds"), metrics.get("train_examples_per_second"), commit, run_dir,
            json.dumps(metrics.get("notes", [])), time.strftime("%Y-%m-%dT%H:%M:%S"), OK, None, metrics.get("threads"),
            metrics.get("precision"),
        )
        return self._insert(key, row, replace_ok=replace)

    def add_failed(self, key: RunKey, metric: str, error: str, commit: str, run_dir: str | None) -> bool:
        """Record a run that failed (status 'failed', the error's one line, no scores) so a sweep can
        go on and say so; tables skip it and count it, and the next benchmark tries it again.
        A finished run of the same key is never replaced by a failure."""
        row = (
            key.digest(), key.study, key.variant, key.model, key.dataset, key.seed, key.budget, metric,
            None, None, key.hyperparameters, "{}", "{}", None, None, commit, run_dir, "[]",
            time.strftime("%Y-%m-%dT%H:%M:%S"), FAILED, error, None, None,
        )
        return self._insert(key, row, replace_ok=False)

    def _insert(self, key: RunKey, row: tuple[Any, ...], replace_ok: bool) -> bool:
        digest = key.digest()
        placeholders = ",".join("?" * len(row))
        update_when = "" if replace_ok else f" WHERE runs.status = '{FAILED}'"
        sql = f"INSERT INTO runs ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT(run_key) DO UPDATE SET {_UPDATE_ALL}{update_when}"

        def write(db: sqlite3.Connection) -> bool:
            stored = db.execute(sql, row).rowcount == 1
            db.execute("DELETE FROM claims WHERE run_key = ? AND token = ?", (digest, self.token))
            return stored

        return self._transaction(write)

    def merge(self, rows: list[dict[str, Any]],
              choose: Callable[[dict[str, str], list[dict[str, Any]]], tuple[T, list[dict[str, Any]]]]) -> T:
        """Add whole rows of other stores in one transaction: `choose(statuses, rows)` sees the
        store's run_key -> status at that moment and returns (its result, the rows to write). A
        row replaces a stored run only where that run failed."""

        def write(db: sqlite3.Connection) -> T:
            existing = {r["run_key"]: r["status"] for r in db.execute("SELECT run_key, status FROM runs")}
            result, chosen = choose(existing, rows)
            sql = (f"INSERT INTO runs ({_COLUMNS}) VALUES ({','.join('?' * len(COLUMNS))}) "
                   f"ON CONFLICT(run_key) DO UPDATE SET {_UPDATE_ALL} WHERE runs.status = '{FAILED}'")
            db.executemany(sql, [tuple(row[name] for name in COLUMNS) for row in chosen])
            return result

        return self._transaction(write)

    def rows(self, study: str | None = None, model: str | None = None, budget: str | None = None) -> list[dict[str, Any]]:
        query, params = "SELECT * FROM runs WHERE 1=1", []
        for column, value in (("study", study), ("model", model), ("budget", budget)):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        return self._retry(lambda: [dict(row) for row in self._db.execute(query + " ORDER BY id", params)])

    # -- claims --------------------------------------------------------------------------------

    def _claim_is_live(self, claim: sqlite3.Row, now: float) -> bool:
        if claim["token"] == self.token:
            return False  # ours (left from an earlier attempt): take it again
        return claim_is_live(dict(claim), self.host, now)

    def claim(self, key: RunKey, force: bool = False) -> str | None:
        """Claim a run before training it. None: this process holds the claim now; otherwise why
        not: 'already stored' (unless force) or 'being trained by pid P on HOST'."""
        digest = key.digest()

        def take(db: sqlite3.Connection) -> str | None:
            if not force and db.execute("SELECT 1 FROM runs WHERE run_key = ? AND status = 'ok'", (digest,)).fetchone():
                return ALREADY_STORED
            now = time.time()
            held = db.execute("SELECT * FROM claims WHERE run_key = ?", (digest,)).fetchone()
            if held is not None and self._claim_is_live(held, now):
                return f"being trained by pid {held['pid']} on {held['host']}"
            db.execute("INSERT OR REPLACE INTO claims (run_key, token, pid, host, claimed_at, heartbeat) VALUES (?,?,?,?,?,?)",
                       (digest, self.token, os.getpid(), self.host, now, now))
            return None

        return self._transaction(take)

    def release(self, key: RunKey) -> None:
        """Drop this process's claim (after a failed or interrupted run). Waits one busy timeout at
        most: a claim left behind is taken over once this process has exited."""
        with suppress(BlurbkitError):
            self._transaction(lambda db: db.execute("DELETE FROM claims WHERE run_key = ? AND token = ?", (key.digest(), self.token)), 0)

    def touch(self, keys: Iterable[RunKey]) -> None:
        """Refresh the heartbeat of this process's claims on `keys` in one short write: a driver
        whose runs train in other processes or machines keeps its claims live this way."""
        rows = [(time.time(), key.digest(), self.token) for key in keys]
        with suppress(BlurbkitError):  # locked: the next beat tries again
            self._transaction(lambda db: db.executemany(
                "UPDATE claims SET heartbeat = ? WHERE run_key = ? AND token = ?", rows), 5.0)

    @contextmanager
    def heartbeat(self, key: RunKey, every: float = HEARTBEAT) -> Iterator[None]:
        """While the block runs (training), refresh the claim's heartbeat from a thread with its own connection."""
        stop = threading.Event()
        digest = key.digest()

        def beat() -> None:
            db = sqlite3.connect(self.path, timeout=min(5.0, every), isolation_level=None)
            try:
                while not stop.wait(every):
                    with suppress(sqlite3.OperationalError):  # locked: try again at the next beat
                        db.execute("UPDATE claims SET heartbeat = ? WHERE run_key = ? AND token = ?", (time.time(), digest, self.token))
            finally:
                db.close()

        thread = threading.Thread(target=beat, name=f"blurbkit-claim-{digest[:8]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def close(self) -> None:
        self._db.close()
