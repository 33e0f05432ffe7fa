"""The executor interface, running each task at once in this process with the worker's own code
(`execute_run`): the drivers' scheduling, store and retry logic without worker processes."""

from __future__ import annotations


class SyncExecutor:
    name, slots = "sync", 2

    def __init__(self) -> None:
        self.outcomes: list = []
        self.submitted: list = []
        self.closed = 0

    def submit(self, task) -> None:
        from blurbkit.experiments.executors import execute_run

        self.submitted.append(task)
        self.outcomes.append(execute_run(task))

    def wait(self, timeout: float) -> list:
        done, self.outcomes = self.outcomes, []
        return done

    def running(self) -> int:
        return 0

    def close(self) -> None:
        self.closed += 1
