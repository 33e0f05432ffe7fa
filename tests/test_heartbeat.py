"""A run's position readable from outside (train/heartbeat.py) and a sweep's live bar and ETA built
from it (experiments/progress.py, driver.py)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from blurbkit.cli.main import main
from blurbkit.experiments.driver import Driver, Job
from blurbkit.experiments.executors import RunTask
from blurbkit.experiments.progress import LiveRun, SweepProgress
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import RunKey
from blurbkit.train import heartbeat
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.heartbeat import FILE_NAME, Heartbeat, RunProgress, is_progress_entry, read_progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_heartbeat_writes_at_most_every_interval_with_this_process_rate(tmp_path):
    clock = Clock()
    beat = Heartbeat(tmp_path, every=5, clock=clock)
    beat.begin(steps=40, total=200, epoch=3, epochs=10)  # a resumed run: 40 steps done before this process
    first = read_progress(tmp_path)
    assert first == RunProgress(40, 200, 3, 10, None, None, 1000.0, os.getpid(), socket.gethostname())
    assert first.alive() is True
    clock.now += 4
    beat.step(48, 3)
    assert read_progress(tmp_path) == first  # within the interval: not written
    clock.now += 1
    beat.step(50, 3)
    assert read_progress(tmp_path).rate == pytest.approx(10 / 5)  # this process's steps over its time
    clock.now += 1
    beat.scored(52, 3, 0.7512)  # an epoch's dev score goes out at once
    now = read_progress(tmp_path)
    assert (now.steps, now.dev, now.fraction) == (52, 0.7512, 0.26)
    assert now.seconds_left() == pytest.approx((200 - 52) / (12 / 6))
    assert now.describe() == "ep 3/10 26% dev 75.12"
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporaries left


@pytest.mark.parametrize("text", ["", '{"format": "blurbkit-progress/1", "steps": 1', "[1, 2]", '{"steps": 1}',
                                  '{"format": "blurbkit-progress/1", "steps": "x", "total": 2, "epoch": 1, "epochs": 1, '
                                  '"dev": null, "rate": null, "updated": 0}'])
def test_a_missing_torn_or_foreign_progress_file_reads_as_none(text, tmp_path):
    assert read_progress(tmp_path) is None and read_progress(None) is None
    (tmp_path / FILE_NAME).write_text(text)
    assert read_progress(tmp_path) is None


def test_progress_entries_are_the_file_and_its_temporaries():
    assert is_progress_entry(".progress.json") and is_progress_entry("..progress.json.a1b2c3d4.tmp")
    assert not is_progress_entry("progress.json") and not is_progress_entry(".checkpoint")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def test_a_training_run_reports_its_position_and_the_finished_run_drops_it(tiny_model, shared_data, tmp_path, monkeypatch):
    import blurbkit.train.engine as engine

    monkeypatch.setattr(heartbeat, "EVERY", 0.0)  # every step written, so the kill point sees it
    seen = []

    def kill_point(name: str) -> None:
        if name.startswith("step:"):
            seen.append((int(name[5:]), read_progress(out)))

    monkeypatch.setattr(engine, "kill_point", kill_point)
    out = tmp_path / "run"
    # gad: 24 train examples in batches of 4 = 6 steps per epoch, 2 epochs
    argv = ["finetune", "--dataset", "gad", "--epochs", "2", "--batch-size", "4", "--max-train-examples", "24",
            "--max-eval-examples", "8", "--max-test-examples", "8", "--max-length", "64", "--no-progress",
            "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)]
    assert main(argv) == 0
    assert [step for step, _ in seen] == list(range(1, 13))
    for step, progress in seen:
        assert (progress.steps, progress.total, progress.epochs) == (step, 12, 2)
        assert progress.epoch == (1 if step <= 6 else 2)
        assert (progress.dev is None) == (step <= 6)  # epoch 1's dev score reported from epoch 2 on
        assert progress.rate is not None and progress.rate > 0
    assert not (out / FILE_NAME).exists() and (out / "metrics.json").exists()


def test_eta_uses_runs_in_flight_before_any_run_has_finished():
    bar = SweepProgress({"jnlpba": 1, "chemprot": 3}, enabled=False)
    assert bar.eta(slots=2) is None
    now = time.time()
    jnlpba = RunProgress(steps=100, total=400, epoch=2, epochs=10, dev=None, rate=0.5, updated=now)  # 600 s left
    chemprot = RunProgress(steps=50, total=100, epoch=5, epochs=10, dev=0.4, rate=1.0, updated=now)  # 50 s left, 100 s a run
    live = [LiveRun("jnlpba", "jnlpba seed 0", jnlpba), LiveRun("chemprot", "chemprot seed 0", chemprot)]
    # work: 600 + 50 in flight, 2 more chemprot runs at 100 s each: 850 s over 2 slots, but jnlpba alone needs 600 s
    assert bar.eta(slots=2, live=live) == pytest.approx(600)
    assert bar.eta(slots=1, live=live) == pytest.approx(850)
    bar.settle("chemprot", ok=True, seconds=300.0)  # a measured run time wins over the projection
    assert bar.eta(slots=1, live=live) == pytest.approx(600 + 50 + 1 * 300)


class FakeDriver(Driver):
    def __init__(self) -> None:
        self.jobs = {}


def _job(out, ship: bool = False) -> Job:
    key = RunKey("benchmark", "standard", "model", "gad", 0, "full", "{}")
    task = RunTask(key, FinetuneConfig(dataset="gad", out=out), "gad seed 0", ship=ship)
    return Job(task, "gad")


def test_driver_shows_runs_in_flight_but_not_a_killed_earlier_runs_file(tmp_path):
    driver = FakeDriver()
    fresh, stale, shipped = tmp_path / "fresh", tmp_path / "stale", tmp_path / "shipped"
    for run_dir in (fresh, stale, shipped):
        run_dir.mkdir()
    Heartbeat(stale, clock=lambda: time.time() - 3600).begin(5, 10, 1, 2)  # left by a driver killed an hour ago
    driver.jobs = {"a": _job(fresh), "b": _job(stale), "c": _job(shipped, ship=True)}
    for run_dir in (fresh, shipped):
        Heartbeat(run_dir).begin(3, 10, 1, 2)
    live = driver.live()
    assert [(run.label, run.progress.steps) for run in live] == [("gad seed 0", 3)]
    bar = SweepProgress({"gad": 3}, enabled=False)
    bar.show(running=3, slots=2, live=live)
    assert "| gad seed 0: ep 1/2 30%" in bar.bar.postfix
    json.loads((fresh / FILE_NAME).read_text())  # whole JSON for any reader


def _store_with_runs(runs: Path) -> None:
    from blurbkit.store.results import ResultsStore

    store = ResultsStore(runs / "results.sqlite")
    for seed in (0, 1):
        key = RunKey("benchmark", "standard", "/models/minilm", "gad", seed, "full", "{}")
        store.add(key, {"metric": "f1", "test": {"score": 0.8}, "dev": {"score": 0.8}}, "abc", None)
    store.add_failed(RunKey("benchmark", "standard", "/models/minilm", "gad", 2, "full", "{}"), "f1", "NaN loss", "abc", None)
    assert store.claim(RunKey("benchmark", "standard", "/models/minilm", "gad", 3, "full", "{}")) is None  # this process trains it
    store.close()


def test_status_counts_the_store_and_tells_training_from_stopped_runs(tmp_path, capsys):
    import subprocess
    import sys

    runs = tmp_path / "runs"
    _store_with_runs(runs)
    training, stopped, elsewhere = (runs / "benchmark" / name for name in ("jnlpba", "chemprot", "ddi"))
    for run_dir in (training, stopped, elsewhere):
        run_dir.mkdir(parents=True)
    beat = Heartbeat(training, clock=Clock())
    beat.begin(0, 400, 1, 10)
    beat.clock.now += 100
    beat.scored(40, 1, 0.7412)  # 0.4 steps/s: 360 steps = 15 min left
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    Heartbeat(stopped).begin(120, 400, 3, 10)
    record = json.loads((stopped / FILE_NAME).read_text())
    (stopped / FILE_NAME).write_text(json.dumps(record | {"pid": int(gone.stdout)}))  # a process that has exited
    Heartbeat(elsewhere).begin(7, 100, 1, 10)
    record = json.loads((elsewhere / FILE_NAME).read_text())
    (elsewhere / FILE_NAME).write_text(json.dumps(record | {"host": "node-2", "updated": time.time() - 7200}))
    assert main(["status", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "3 runs (2 stored, 1 failed)" in out and "| benchmark | minilm | gad | 2 | 1 |" in out
    assert f"claimed by live drivers: 1 run(s) (pid {os.getpid()} on {socket.gethostname()})" in out
    lines = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| benchmark/")}
    assert "| training | ep 1/10 10% dev 74.12 (step 40 of 400) | 0:15:00 |" in lines["benchmark/jnlpba"]
    assert "| stopped | ep 3/10 30% (step 120 of 400) | - |" in lines["benchmark/chemprot"]
    assert "| quiet |" in lines["benchmark/ddi"] and "2.0 h ago, pid" in lines["benchmark/ddi"] and "on node-2" in lines["benchmark/ddi"]
    assert "running its command again continues the run from its last checkpoint" in out


def test_status_of_a_missing_runs_directory_is_one_line(tmp_path, capsys):
    assert main(["status", "--runs-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no runs directory here" in err[0]
    (tmp_path / "runs").mkdir()
    assert main(["status", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "no results store in" in capsys.readouterr().out
