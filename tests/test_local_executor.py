"""The local process pool's failure modes, with stand-in runs (module level: the fork server imports
them): a dead worker charges only the runs that were running, a stopped driver ends its workers, and
a worker ends when its driver is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from blurbkit.experiments.executors import LocalExecutor, RunOutcome, RunTask
from blurbkit.experiments.run_records import run_key
from blurbkit.store.results import pid_alive
from blurbkit.train.config import FinetuneConfig


def stand_in(task: RunTask, driver_pid: int) -> RunOutcome:
    if task.label == "crash":
        time.sleep(0.5)
        os._exit(9)  # as the out-of-memory killer would
    if task.label.startswith("sleep:"):
        Path(task.label[len("sleep:"):]).write_text(str(os.getpid()))
        time.sleep(120)
    return RunOutcome(task.key.digest(), metrics={"dev": {"score": 0.5}})


def task(seed: int, label: str) -> RunTask:
    config = FinetuneConfig("gad", seed=seed)
    return RunTask(run_key("s", "v", config, "m", "full"), config, label)


def outcomes_of(executor: LocalExecutor, count: int, limit: float = 60.0) -> list[RunOutcome]:
    outcomes, start = [], time.monotonic()
    while len(outcomes) < count and time.monotonic() - start < limit:
        outcomes += executor.wait(0.5)
    return outcomes


def test_a_dead_worker_charges_only_the_run_in_flight_not_the_queued_ones():
    executor = LocalExecutor(workers=1, target=stand_in)
    tasks = [task(0, "crash"), task(1, "ok"), task(2, "ok")]
    try:
        for t in tasks:
            executor.submit(t)
        outcomes = {o.digest: o for o in outcomes_of(executor, 3)}
    finally:
        executor.close()
    assert outcomes[tasks[0].key.digest()].error.startswith("worker process died")
    assert all(outcomes[t.key.digest()].metrics is not None for t in tasks[1:]), outcomes


def test_closing_the_executor_ends_the_runs_in_flight(tmp_path):
    executor = LocalExecutor(workers=1, target=stand_in)
    marker = tmp_path / "pid"
    executor.submit(task(0, f"sleep:{marker}"))
    start = time.monotonic()
    while not marker.exists() and time.monotonic() - start < 60:
        executor.wait(0.2)
    pid = int(marker.read_text())
    start = time.monotonic()
    executor.close()
    assert time.monotonic() - start < 30  # not the run's 120 s
    for _ in range(50):
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    assert not pid_alive(pid)


def test_a_worker_ends_when_its_driver_is_gone():
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = subprocess.Popen([sys.executable, "-c", f"from blurbkit.experiments.executors import watch_driver; "
                               f"watch_driver({driver.pid}, 0.1); import time; time.sleep(60)"])
    try:
        time.sleep(3)  # the worker has started watching (its imports included)
        assert worker.poll() is None
        driver.kill()
        driver.wait()
        assert worker.wait(timeout=20) == 1
    finally:
        for process in (driver, worker):
            process.kill()
