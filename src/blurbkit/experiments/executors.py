"""Where the runs of a sweep execute. The driver (experiments/sweep.py) submits `RunTask`s and gets
`RunOutcome`s back; it alone writes the results store. Two executors:

- `local`: a pool of worker processes sized to this machine (threads per run x runs at once <= its
  cores), each run in a fresh process (forked from a server that has torch imported already);
- `ray` (experiments/ray_executor.py): each run a Ray task with declared CPU/GPU resources on an
  existing cluster or a local Ray instance. Ray schedules; blurbkit adds no scheduler of its own.

Both call `execute_run` in the worker, so the same seeds give the same results on either.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, clean_stale
from blurbkit.runtime.capability import capability, usable_cores
from blurbkit.store.results import RunKey, pid_alive
from blurbkit.train.config import FinetuneConfig

# Environment a worker needs to see what the driver sees (caches, data, dtype override); Ray workers
# on other machines or started by `ray start` do not inherit the driver's environment.
# Imported once by the local pool's fork server, so a run's process starts with them loaded
# (transformers imports a model's modules lazily: BERT's alone took 5 s on a busy 2-core machine).
PRELOAD = ["blurbkit.train.run", "transformers.models.bert.modeling_bert", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto"]
WATCH_EVERY = 5.0  # s between a local worker's looks at its driver
FORWARDED_ENV = ("BLURBKIT_HOME", "BLURBKIT_CACHE", "BLURBKIT_DATA", "BLURBKIT_CPU_DTYPES", "HF_HUB_OFFLINE",
                 "TOKENIZERS_PARALLELISM")


@dataclass(frozen=True)
class RunTask:
    key: RunKey
    config: FinetuneConfig  # with `out` set: the run directory (shared storage) or its final place (ship)
    label: str  # "gad seed 0 lr 3e-05 bs 16 ep 5", for progress lines and errors
    threads: int = 1
    ship: bool = False  # write the run directory in the worker's temp dir and send it back as bytes
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunOutcome:
    digest: str
    metrics: dict[str, Any] | None = None
    error: str | None = None  # one line
    retryable: bool = True  # False for a BlurbkitError: bad input fails the same way every time
    run_dir: bytes | None = None  # tar.gz of the run directory (ship mode)
    seconds: float = 0.0  # the whole run in the worker, start-up included
    host: str = ""
    node: str = ""  # Ray node id (empty for the local pool)


def thread_only_bar_lock() -> None:
    """tqdm's default write lock holds a multiprocessing semaphore. A worker ended by its driver
    (SIGTERM or Ctrl-C stops the runs in flight) cannot free it, and Python's resource tracker then
    warns of leaked semaphores under the driver's "terminated". A run's output is captured and its
    bars are off, so a thread lock is all a worker needs."""
    from tqdm.std import tqdm

    tqdm.set_lock(threading.RLock())


def execute_run(task: RunTask) -> RunOutcome:
    """One fine-tuning run in a worker process; never raises (the error travels back as data)."""
    started = time.perf_counter()
    thread_only_bar_lock()
    outcome = RunOutcome(task.key.digest(), host=socket.gethostname())
    os.environ.update(task.env)
    tmp = Path(tempfile.mkdtemp(prefix="blurbkit-run-")) if task.ship and task.config.out else None
    try:
        import torch

        from blurbkit.train.run import run_finetune

        torch.set_num_threads(task.threads)
        config = task.config.replace(threads=task.threads, progress=False)
        if tmp is not None:
            config = config.replace(out=tmp / "run")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            outcome.metrics = run_finetune(config)  # its notes are in the metrics; the driver prints the lines
        if tmp is not None:
            outcome.run_dir = pack_dir(tmp / "run")
    except BlurbkitError as err:
        outcome.error, outcome.retryable = str(err), False
    except Exception as err:  # a bug or a crash of the run: retried, then recorded with its last line
        last = traceback.extract_tb(err.__traceback__)[-1:]
        where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
        outcome.error = f"{type(err).__name__}: {err}{where}".replace("\n", " ")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_seconds(outcome: RunOutcome) -> float:
    """A finished run's whole time for the ETA: a resumed run's worker saw only its last part, its
    metrics' wall_seconds count the killed processes' too (train/checkpoint.py RunClock)."""
    return max(outcome.seconds, float((outcome.metrics or {}).get("wall_seconds") or 0.0))


def pack_dir(path: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def unpack_dir(data: bytes, out: Path) -> None:
    """A shipped run directory into its place under --runs-dir, whole or not at all."""
    clean_stale(out)  # what a killed earlier write left beside it (and an interrupted replace's old version)
    with atomic_dir(out) as tmp, tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(tmp, filter="data")


class Executor(Protocol):
    name: str
    slots: int  # runs at once

    def submit(self, task: RunTask) -> None: ...
    def wait(self, timeout: float) -> list[RunOutcome]: ...
    def running(self) -> int: ...
    def close(self) -> None: ...


def machine_cores() -> int:
    """Physical cores this process may use (runtime/capability.py: affinity mask, cgroup quota)."""
    return usable_cores(capability().cpu)


def pool_size(threads: int, workers: int | None) -> int:
    """Runs at once on this machine: threads per run x runs <= cores, unless asked otherwise."""
    return workers or max(1, machine_cores() // threads)


def watch_driver(driver_pid: int, every: float = WATCH_EVERY) -> None:
    """End this worker when the driver that started it is gone (killed with SIGKILL, say): an
    orphaned run would go on training into a directory whose claim a restarted driver takes over."""

    def watch() -> None:
        while True:
            time.sleep(every)
            if not pid_alive(driver_pid):
                os._exit(1)

    threading.Thread(target=watch, name="blurbkit-watch-driver", daemon=True).start()


def execute_watched(task: RunTask, driver_pid: int) -> RunOutcome:
    """`execute_run` in a local pool worker, which ends with its driver."""
    watch_driver(driver_pid)
    return execute_run(task)


class LocalExecutor:
    name = "local"

    def __init__(self, threads: int = 1, workers: int | None = None,
                 target: Callable[[RunTask, int], RunOutcome] = execute_watched) -> None:
        self.threads, self.slots = threads, pool_size(threads, workers)
        self.target = target  # tests: a stand-in for a run (module level, the fork server imports it)
        self._futures: dict[Future, RunTask] = {}
        self._backlog: deque[RunTask] = deque()  # submitted, not in the pool yet
        self._pool: ProcessPoolExecutor | None = None

    def _make_pool(self) -> ProcessPoolExecutor:
        # forkserver: each run forks from a server that imported torch once (fast, and no threads
        # of the driver are forked); max_tasks_per_child=1: every run in a process of its own.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ProcessPoolExecutor(self.slots, mp_context=ctx, max_tasks_per_child=1)

    def submit(self, task: RunTask) -> None:
        self._backlog.append(task)
        self._fill()

    def _fill(self) -> None:
        """At most `slots` runs in the pool, all of them running: when one worker dies the pool
        stops every run in it, so only runs that were running pay an attempt, never queued ones."""
        while self._backlog and len(self._futures) < self.slots:
            if self._pool is None:
                self._pool = self._make_pool()
            task = self._backlog.popleft()
            try:
                self._futures[self._pool.submit(self.target, task, os.getpid())] = task
            except BrokenProcessPool:  # a worker died since the last look: a new pool for the rest
                self._backlog.appendleft(task)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def wait(self, timeout: float) -> list[RunOutcome]:
        self._fill()
        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            task = self._futures.pop(future)
            try:
                outcomes.append(future.result())
            except BaseException as err:  # a worker process died (killed, out of memory)
                outcomes.append(RunOutcome(task.key.digest(), error=f"worker process died ({type(err).__name__}; "
                                           "a dead worker stops every run in flight on this machine)"))
        if any(o.error and o.error.startswith("worker process died") for o in outcomes) and self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=False)
            self._pool = None
        self._fill()
        return outcomes

    def running(self) -> int:
        return min(self.slots, sum(1 for f in self._futures if f.running()))

    def close(self) -> None:
        """The runs in flight stop with the driver (Ctrl-C, an error, SIGTERM): their workers are
        ended, not waited for; each keeps its last checkpoint for the next drive."""
        self._backlog.clear()
        if self._pool is not None:
            if any(not f.done() for f in self._futures):
                processes = getattr(self._pool, "_processes", None) or {}  # private, but stable since 3.8
                for process in list(processes.values()):
                    process.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()
