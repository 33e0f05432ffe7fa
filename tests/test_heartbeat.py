"""A run's position readable from outside (train/heartbeat.py) and a sweep's live bar and ETA built
from it (experiments/progress.py, driver.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.experiments.driver import Driver, Job
from blurbkit.experiments.executors import RunTask
from blurbkit.experiments.progress import LiveRun, SweepProgress
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import RunKey
from blurbkit.train import heartbeat
from blurbkit.train.checkpoint import saved_steps
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
                                  '"dev": null, "rate": null, "updated": 0}',
                                  '{"format": "blurbkit-progress/1", "steps": 1, "total": 2, "epoch": 1, "epochs": 1, '
                                  '"dev": null, "rate": NaN, "updated": 0}',
                                  '{"format": "blurbkit-progress/1", "steps": 1, "total": 2, "epoch": 1, "epochs": 1, '
                                  '"dev": null, "rate": -1.0, "updated": 0}',
                                  '{"format": "blurbkit-progress/1", "steps": true, "total": 2, "epoch": 1, "epochs": 1, '
                                  '"dev": null, "rate": null, "updated": Infinity}',
                                  '{"format": "blurbkit-progress/1", "steps": 1, "total": 2, "epoch": 1, "epochs": 1, '
                                  '"dev": null, "rate": null, "updated": 0, "pid": -1, "host": "vm"}'])
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
    assert bar.eta(slots=2, live=live, now=now) == pytest.approx(600)
    assert bar.eta(slots=1, live=live, now=now) == pytest.approx(850)
    assert bar.eta(slots=1, live=live, now=now + 30) == pytest.approx(850 - 2 * 30)  # both runs 30 s further on
    bar.settle("chemprot", ok=True, seconds=300.0)  # a measured run time wins over the projection
    assert bar.eta(slots=1, live=live, now=now) == pytest.approx(600 + 50 + 1 * 300)


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
    assert bar.bar.postfix.startswith("done 0 failed 0 running 3 left 3 ETA ")
    bar.settle("gad", ok=True, seconds=60.0)
    bar.settle("gad", ok=False)
    bar.show(running=1, slots=2)
    assert bar.bar.postfix == "done 1 failed 1 running 1 left 1 ETA 0:01:00"  # a 60 s run left: 2 slots do not halve it
    json.loads((fresh / FILE_NAME).read_text())  # whole JSON for any reader


def _store_with_runs(runs: Path, failed_dir: Path) -> None:
    from blurbkit.store.results import ResultsStore

    store = ResultsStore(runs / "results.sqlite")
    for seed in (0, 1):
        key = RunKey("benchmark", "standard", "/models/minilm", "gad", seed, "full", "{}")
        store.add(key, {"metric": "f1", "test": {"score": 0.8}, "dev": {"score": 0.8}}, "abc", None)
    store.add_failed(RunKey("benchmark", "standard", "/models/minilm", "gad", 2, "full", "{}"), "f1", "NaN loss", "abc",
                     str(failed_dir))
    assert store.claim(RunKey("benchmark", "standard", "/models/minilm", "gad", 3, "full", "{}")) is None  # this process trains it
    store.close()


def _report(run_dir: Path, **fields) -> None:
    """A progress report of this process, then `fields` written over it."""
    Heartbeat(run_dir).begin(fields.pop("steps", 120), 400, fields.pop("epoch", 3), 10)
    record = json.loads((run_dir / FILE_NAME).read_text())
    (run_dir / FILE_NAME).write_text(json.dumps(record | fields))


def _checkpoint(run_dir: Path, steps: int) -> None:
    (run_dir / ".checkpoint").mkdir()
    from blurbkit.train.checkpoint import FORMAT

    (run_dir / ".checkpoint" / "state.json").write_text(json.dumps({"format": FORMAT, "result": {"steps": steps}}))


def test_status_counts_the_store_and_tells_each_state_of_an_unfinished_run(tmp_path, capsys):
    import subprocess
    import sys

    runs = tmp_path / "runs"
    names = ("jnlpba", "chemprot", "ddi", "bc2gm", "hoc", "gad", ".ncbi.a1b2c3d4.tmp")
    training, stopped, elsewhere, fresh_stop, hung, failed, leftover = (runs / "benchmark" / n for n in names)
    for run_dir in (training, stopped, elsewhere, fresh_stop, hung, failed, leftover):
        run_dir.mkdir(parents=True)
    _store_with_runs(runs, failed)
    beat = Heartbeat(training, clock=Clock())
    beat.clock.now = time.time() - 100
    beat.begin(0, 400, 1, 10)
    beat.clock.now += 100
    beat.scored(40, 1, 0.7412)  # 0.4 steps/s: 360 steps = 15 min left
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    _report(stopped, pid=gone)
    _checkpoint(stopped, 100)  # a re-run continues from step 100
    _report(fresh_stop, pid=gone, steps=7, epoch=1)  # killed before its first checkpoint
    _report(elsewhere, host="node-2", updated=time.time() - 7200, steps=7, epoch=1)
    _report(hung, updated=time.time() - 7200)  # its pid is alive (this process), but it has not reported for 2 h
    _report(failed, pid=gone)
    _report(leftover)  # inside an atomic_dir temporary: not a run
    assert main(["status", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "3 runs (2 stored, 1 failed)" in out and "| benchmark | minilm | gad | 2 | 1 |" in out
    assert f"claimed by live drivers: 1 run(s) (pid {os.getpid()} on {socket.gethostname()})" in out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| benchmark/")}
    assert sorted(rows) == [f"benchmark/{n}" for n in sorted(names[:6])]
    # 15 min left when reported, less the seconds this test took since (a loaded machine is slow)
    left = re.search(r"\| training \| ep 1/10 10% dev 74\.12 \(step 40 of 400\) \| 0:(\d\d):(\d\d) \| none \|",
                     rows["benchmark/jnlpba"])
    assert left and 14 * 60 <= int(left[1]) * 60 + int(left[2]) <= 15 * 60, rows["benchmark/jnlpba"]
    assert "| stopped | ep 3/10 30% (step 120 of 400) | - | step 100 |" in rows["benchmark/chemprot"]
    assert "| stopped | ep 1/10 2% (step 7 of 400) | - | none |" in rows["benchmark/bc2gm"]
    assert "| quiet |" in rows["benchmark/ddi"] and "2.00 h ago, pid" in rows["benchmark/ddi"] and "on node-2" in rows["benchmark/ddi"]
    assert "| quiet |" in rows["benchmark/hoc"]
    assert "| failed |" in rows["benchmark/gad"]
    assert "stopped with a checkpoint: a re-run of its benchmark/ablate continues it from there (finetune: with --resume)" in out
    assert "stopped with no checkpoint: a re-run starts it over" in out
    assert "failed: stored as failed (NaN loss)" in out


class Killed(BaseException):
    """Stands in for a kill -9 at a test hook point (the real kills are in test_resume.py)."""


def _finetune_killed_at(module, point: str, argv: list[str], monkeypatch) -> None:
    def kill_point(name: str) -> None:
        if name == point:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(module, "kill_point", kill_point)
        with pytest.raises(Killed):
            main(argv)


def _gad_argv(model: Path, data: Path, out: Path, epochs: int) -> list[str]:
    return ["finetune", "--dataset", "gad", "--epochs", str(epochs), "--batch-size", "4", "--max-train-examples", "24",
            "--max-eval-examples", "8", "--max-test-examples", "8", "--max-length", "64", "--no-progress",
            "--model", str(model), "--data", str(data), "--out", str(out)]


def test_a_run_killed_before_its_first_checkpoint_runs_again_without_resume(tiny_model, shared_data, tmp_path, monkeypatch):
    import blurbkit.train.engine as engine

    out = tmp_path / "run"
    argv = _gad_argv(tiny_model, shared_data, out, epochs=1)
    _finetune_killed_at(engine, "step:3", argv, monkeypatch)
    assert [p.name for p in out.iterdir()] == [FILE_NAME]  # its report, no checkpoint yet
    assert saved_steps(out) is None
    assert main(argv) == 0  # nothing to resume: it starts over, no --resume needed
    assert (out / "metrics.json").exists() and not (out / FILE_NAME).exists()


def test_a_resumed_run_reports_its_last_dev_score_and_an_epoch_of_its_schedule(tiny_model, shared_data, tmp_path, monkeypatch):
    import blurbkit.train.run as run

    out = tmp_path / "run"
    argv = [*_gad_argv(tiny_model, shared_data, out, epochs=2), "--lr", "3e-3"]  # dev scores 1 and 2 then differ
    _finetune_killed_at(run, "rundir", argv, monkeypatch)  # after training, while writing the run directory
    assert saved_steps(out) == 12  # what `status` shows as the last checkpoint, read from the real one
    seen = []
    begin = Heartbeat.begin

    def record(self, steps, total, epoch, epochs):
        begin(self, steps, total, epoch, epochs)
        seen.append(read_progress(out))

    monkeypatch.setattr(Heartbeat, "begin", record)
    assert main([*argv, "--resume"]) == 0
    (resumed,) = seen
    assert (resumed.steps, resumed.total, resumed.epoch, resumed.epochs) == (12, 12, 2, 2)
    # epoch 2's dev score, from the checkpoint's history: the one the finished run's epochs.jsonl keeps
    scores = {item["epoch"]: item["score"] for item in map(json.loads, (out / "epochs.jsonl").read_text().splitlines())}
    assert sorted(scores) == [1, 2] and scores[1] != scores[2] and resumed.dev == pytest.approx(scores[2], abs=1e-12)


def test_status_of_a_missing_runs_directory_is_one_line(tmp_path, capsys):
    assert main(["status", "--runs-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no runs directory here" in err[0]
    (tmp_path / "runs").mkdir()
    assert main(["status", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "no results store in" in capsys.readouterr().out


def test_a_retried_run_does_not_show_its_crashed_attempts_report(tmp_path):
    from blurbkit.experiments.executors import RunOutcome

    class Executor:
        def submit(self, task):
            self.submitted = task

    driver = FakeDriver()
    driver.executor, driver.retries, driver.bar = Executor(), 1, SweepProgress({"gad": 1}, enabled=False)
    job = _job(tmp_path)
    job.submitted = time.time() - 60
    driver.jobs = {job.task.key.digest(): job}
    Heartbeat(tmp_path).begin(5, 10, 1, 2)  # the attempt that crashed
    assert [run.progress.steps for run in driver.live()] == [5]
    driver.settle(RunOutcome(job.task.key.digest(), error="worker died"))
    assert driver.executor.submitted is job.task and driver.live() == []  # until the new attempt reports


def test_a_failed_run_a_later_drive_retrains_shows_as_training_again(tmp_path):
    from blurbkit.experiments.status import RunInFlight

    run_dir = tmp_path / "gad"
    run_dir.mkdir()
    _report(run_dir)  # this process reports from it now
    progress = read_progress(run_dir)
    assert RunInFlight(run_dir, progress, None, failed="NaN loss").state() == "training again"
    _report(run_dir, updated=time.time() - 7200)
    assert RunInFlight(run_dir, read_progress(run_dir), None, failed="NaN loss").state() == "failed"


def test_the_eta_learns_from_finished_runs_whole_time_not_from_failures():
    from blurbkit.experiments.executors import RunOutcome, run_seconds

    bar = SweepProgress({"gad": 4}, enabled=False)
    bar.settle("gad", ok=False, seconds=2.0)  # crashed at start
    resumed = RunOutcome("d", metrics={"wall_seconds": 100.0}, seconds=30.0)  # its worker saw the last 30 s only
    bar.settle("gad", ok=True, seconds=run_seconds(resumed))
    assert bar.times["gad"] == [100.0]
    assert bar.eta(slots=1) == pytest.approx(200.0)  # two runs left at 100 s each
