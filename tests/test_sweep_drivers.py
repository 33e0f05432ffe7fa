"""The full-protocol driver's scheduling against a results store, with an executor that 'trains' at
once (dev scores made up per grid point): a restarted driver, two drivers on one store."""

from __future__ import annotations

import pytest

from blurbkit.experiments import driver, sweep
from blurbkit.experiments.executors import RunOutcome
from blurbkit.experiments.protocol import STUDY, VARIANT, DatasetProtocol
from blurbkit.experiments.run_records import run_key
from blurbkit.experiments.sweep import Sweep
from blurbkit.store.results import ResultsStore
from blurbkit.train.config import FinetuneConfig

GRID = {"lr": (1e-5, 3e-5), "batch_size": (16,), "epochs": (1,), "selection_seeds": 3}


def dev_score(config: FinetuneConfig) -> float:
    # lr 3e-5 has the best mean dev (0.9); lr 1e-5 is best on seed 0 alone (0.95) but worst on average
    if config.lr == 3e-5:
        return 0.9
    return 0.95 if config.seed == 0 else 0.1


class InstantExecutor:
    name, slots = "instant", 2

    def __init__(self, before_wait=None) -> None:
        self.queue: list = []
        self.trained: list[tuple[float, int]] = []
        self.before_wait = before_wait

    def submit(self, task) -> None:
        self.queue.append(task)
        self.trained.append((task.config.lr, task.config.seed))

    def wait(self, timeout: float) -> list[RunOutcome]:
        if self.before_wait:
            self.before_wait()
        done, self.queue = self.queue, []
        return [RunOutcome(t.key.digest(), metrics={"metric": "f1", "dev": {"score": dev_score(t.config)},
                                                    "test": {"score": 0.6}}) for t in done]

    def running(self) -> int:
        return len(self.queue)

    def close(self) -> None:
        pass


def protocol() -> DatasetProtocol:
    return DatasetProtocol.make(FinetuneConfig("gad"), dict(GRID), test_seeds=5)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(driver, "POLL", 0.01)
    monkeypatch.setattr(sweep, "WAIT_LOOK", 0.0)


def test_a_restarted_driver_trains_nothing_and_chooses_the_same_point(tmp_path):
    first = InstantExecutor()
    result = Sweep(ResultsStore(tmp_path / "r.sqlite"), first, None, "m", "full", progress=False).run([protocol()])
    assert result.chosen["gad"][0]["lr"] == 3e-5 and result.chosen["gad"][1] == pytest.approx(0.9)
    assert len(first.trained) == 2 * 3 + 2  # 6 selection runs, then test seeds 3 and 4 on the chosen point
    again = InstantExecutor()
    result = Sweep(ResultsStore(tmp_path / "r.sqlite"), again, None, "m", "full", progress=False).run([protocol()])
    assert again.trained == []
    assert result.chosen["gad"][0]["lr"] == 3e-5 and result.chosen["gad"][1] == pytest.approx(0.9)
    assert result.per_dataset["gad"]["n"] == 5


def test_a_search_run_another_driver_holds_is_waited_for_then_the_point_is_chosen(tmp_path):
    other = ResultsStore(tmp_path / "r.sqlite")  # another driver, holding one search run
    held = protocol().selection_runs()[-1]
    held_key = run_key(STUDY, VARIANT, held, "m", "full")
    assert other.claim(held_key) is None
    calls = []

    def other_driver_finishes() -> None:
        calls.append(1)
        if len(calls) == 3:  # a few polls later the other driver stores its run and lets go
            other.add(held_key, {"metric": "f1", "dev": {"score": dev_score(held)}, "test": {"score": 0.6}}, "c", None)
            other.release(held_key)

    mine = InstantExecutor(other_driver_finishes)
    result = Sweep(ResultsStore(tmp_path / "r.sqlite"), mine, None, "m", "full", progress=False).run([protocol()])
    assert (held.lr, held.seed) not in mine.trained  # not trained twice
    assert result.chosen["gad"][0]["lr"] == 3e-5
    assert len(mine.trained) == 5 + 2 and result.per_dataset["gad"]["n"] == 5
