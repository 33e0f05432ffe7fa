"""Fixed grids (`ablate`, `benchmark --protocol default`, `cv`) through an executor
(experiments/grid_sweep.py): the same keys, run directories and scores as one run after another in
this process; a finished directory stored without training; a run another driver holds left to it;
--force; bad input stopping the grid unless --keep-going; crashes retried then stored as failed;
executor options refused where they would be ignored. The logic runs on a fake fine-tuning and an
in-process executor; a tiny BERT checks that the local pool stores the digits this process stores."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import types
from collections import deque
from pathlib import Path

import pytest
from conftest import fake_model_dir
from sync_executor import SyncExecutor

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A model directory that passes the checks; a fine-tuning that writes a finished run directory
    and scores by dataset, seed and method. `crash[dataset]`: RuntimeErrors before it succeeds;
    `bad`: datasets that fail as bad input."""
    model = fake_model_dir(tmp_path)
    state = types.SimpleNamespace(model=model, trained=[], crash={}, bad=set(), precision=None, speed=None)

    def run_finetune(config):
        if config.dataset in state.bad:
            raise BlurbkitError(f"{config.dataset}: no such split")
        if state.crash.get(config.dataset, 0) > 0:
            state.crash[config.dataset] -= 1
            raise RuntimeError("worker ran out of memory")
        state.trained.append(config)
        score = 0.5 + 0.01 * config.seed + (0.1 if config.freeze_lower_half else 0.0)
        metrics = {"metric": "pearson", "test": {"score": score}, "dev": {"score": score}, "wall_seconds": 0.0, "notes": [],
                   "precision": state.precision}
        if state.speed:  # train examples/s, for plans
            metrics.update(train_examples_per_second=state.speed, wall_seconds=100.0, threads=1)
        config.out.mkdir(parents=True, exist_ok=True)
        (config.out / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    monkeypatch.setitem(sys.modules, "blurbkit.train.run", types.SimpleNamespace(run_finetune=run_finetune))
    return state


@pytest.fixture
def sync(monkeypatch):
    import blurbkit.experiments.executor_choice as executors

    executor = SyncExecutor()
    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: executor)
    return executor


def _stability(model, runs, *extra):
    return ["ablate", "--study", "stability", "--datasets", "biosses", "--variants", "standard,freeze", "--seeds", "2",
            "--model", str(model), "--runs-dir", str(runs), "--no-progress", *extra]


def _rows(runs: Path) -> dict[str, tuple]:
    return {r["run_key"]: (r["variant"], r["seed"], r["test_score"], r["status"], str(Path(r["run_dir"]).relative_to(runs)))
            for r in ResultsStore(runs / "results.sqlite").rows()}


def test_a_study_on_an_executor_stores_what_this_process_stores(fake, sync, tmp_path, capsys):
    assert main(_stability(fake.model, tmp_path / "here")) == 0
    here = capsys.readouterr()
    assert main(_stability(fake.model, tmp_path / "pool", "--executor", "local")) == 0
    pool = capsys.readouterr()
    assert len(sync.submitted) == 4 and sync.closed == 1
    assert _rows(tmp_path / "here") == _rows(tmp_path / "pool") and len(_rows(tmp_path / "pool")) == 4
    table = [line for line in here.out.splitlines() if line.startswith("|")]
    assert table and table == [line for line in pool.out.splitlines() if line.startswith("|")]
    assert "executor sync: 2 runs at once, 1 thread(s) each" in pool.err
    finished = [line for line in pool.err.splitlines() if " test pearson = " in line]
    assert len(finished) == 4 and "biosses seed 1 [freeze] test pearson = 61.00" in pool.err
    task = sync.submitted[0]
    assert task.config.out.is_absolute() and task.config.resume and not task.config.progress
    # Stored runs are skipped, on the executor as in this process.
    assert main(_stability(fake.model, tmp_path / "pool", "--executor", "local")) == 0
    assert len(sync.submitted) == 4 and "4 of 4 runs already stored; skipped" in capsys.readouterr().err


def test_runs_exported_from_one_machine_are_not_trained_again_on_another(fake, sync, tmp_path, capsys):
    """Two machines, no shared store: seeds 0-1 trained on A, exported, merged into B's store;
    B's 3-seed study trains only seed 2 and stores what one machine running all of it stores."""
    assert main(_stability(fake.model, tmp_path / "a")) == 0
    export = tmp_path / "a-runs.jsonl"
    assert main(["store", "export", "--store", str(tmp_path / "a" / "results.sqlite"), "--out", str(export)]) == 0
    assert main(["store", "merge", str(export), "--into", str(tmp_path / "b" / "results.sqlite")]) == 0
    assert "4 run(s) added, 0 failed run(s) replaced by finished ones, 0 already there" in capsys.readouterr().out
    fake.trained.clear()
    assert main(_stability(fake.model, tmp_path / "b", "--seeds", "3")) == 0
    assert sorted((c.seed, c.freeze_lower_half) for c in fake.trained) == [(2, False), (2, True)]
    b_table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert main(_stability(fake.model, tmp_path / "one", "--seeds", "3")) == 0
    one_table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert b_table and b_table == one_table

    def scores(runs):
        return {(r["run_key"], r["test_score"], r["dev_score"]) for r in ResultsStore(runs / "results.sqlite").rows()}

    assert len(scores(tmp_path / "b")) == 6 and scores(tmp_path / "b") == scores(tmp_path / "one")


def test_a_table_of_runs_merged_from_a_bf16_and_an_fp32_machine_says_so(fake, sync, tmp_path, capsys):
    fake.precision = "bfloat16"
    assert main(_stability(fake.model, tmp_path / "a")) == 0
    assert main(["store", "merge", str(tmp_path / "a" / "results.sqlite"), "--into", str(tmp_path / "b" / "results.sqlite")]) == 0
    fake.precision = "fp32"
    capsys.readouterr()
    assert main(_stability(fake.model, tmp_path / "b", "--seeds", "3")) == 0
    out = capsys.readouterr().out
    assert ("MIXED PRECISION in cells merged from machines of two kinds (a seed's score moves with the precision): "
            "BIOSSES / standard: 2 run(s) bfloat16, 1 run(s) fp32; BIOSSES / freeze: 2 run(s) bfloat16, 1 run(s) fp32.") in out
    assert {r["precision"] for r in ResultsStore(tmp_path / "b" / "results.sqlite").rows()} == {"bfloat16", "fp32"}
    assert main(_stability(fake.model, tmp_path / "a")) == 0  # one machine's runs: nothing to say
    assert "MIXED PRECISION" not in capsys.readouterr().out


def test_a_plan_on_a_merged_store_times_runs_by_this_machines_precision(fake, sync, tmp_path, monkeypatch, capsys):
    import blurbkit.experiments.cost as cost
    import blurbkit.experiments.plan as plan

    monkeypatch.setattr(plan, "split_sizes", lambda config: {"train": 64, "dev": 16, "test": 16})
    monkeypatch.setattr(cost, "split_sizes", lambda config: {"train": 64, "dev": 16, "test": 16})
    monkeypatch.setattr(plan, "calibrate", lambda config, threads: pytest.fail("stored speeds should be used"))
    fake.precision, fake.speed = "bfloat16", 40.0
    assert main(_stability(fake.model, tmp_path / "runs")) == 0
    monkeypatch.setattr(cost, "_machine_precision", lambda requested: "fp32")
    capsys.readouterr()
    assert main([*_stability(fake.model, tmp_path / "runs", "--seeds", "3"), "--plan"]) == 0
    assert "measured in bfloat16, this machine computes fp32: another CPU class" in capsys.readouterr().out
    fake.precision, fake.speed = "fp32", 10.0  # one run of this machine's kind: the plan times by it alone
    assert main(_stability(fake.model, tmp_path / "runs", "--seeds", "3", "--variants", "standard")) == 0
    capsys.readouterr()
    assert main([*_stability(fake.model, tmp_path / "runs", "--seeds", "4"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "another CPU class" not in out and "store (1 run, 1 thread)" in out


def _benchmark(model, runs, seeds, *extra):
    return ["benchmark", "--datasets", "biosses", "--seeds", str(seeds), "--model", str(model), "--runs-dir", str(runs),
            "--no-progress", "--executor", "local", *extra]


def test_a_finished_directory_is_stored_a_held_run_skipped_and_force_trains_again(fake, sync, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(_benchmark(fake.model, runs, 3)) == 0
    assert len(fake.trained) == 3
    store = runs / "results.sqlite"
    with sqlite3.connect(store) as db:  # seed 1 trained but not stored (the driver was killed in between)
        db.execute("DELETE FROM runs WHERE seed = 1")
    from blurbkit.experiments.benchmark import model_label
    from blurbkit.experiments.run_records import run_key

    seed3 = next(c for c in sync.submitted if c.config.seed == 2).config.replace(seed=3)
    other = ResultsStore(store)  # another driver on the same store holds seed 3
    assert other.claim(run_key("benchmark", "standard", seed3, model_label(str(fake.model)), "full")) is None
    capsys.readouterr()
    assert main(_benchmark(fake.model, runs, 4)) == 0
    err = capsys.readouterr().err
    assert len(fake.trained) == 3
    assert "2 of 4 runs already stored; skipped" in err
    assert "biosses seed 1 [standard] was trained before but not stored; storing its result from" in err
    assert f"biosses seed 3 [standard] being trained by pid {os.getpid()}" in err
    assert sorted(r["seed"] for r in ResultsStore(store).rows()) == [0, 1, 2]
    assert main(_benchmark(fake.model, runs, 3, "--force")) == 0
    assert len(fake.trained) == 6 and len(ResultsStore(store).rows()) == 3


def test_bad_input_stops_the_grid_unless_keep_going(fake, sync, tmp_path, capsys):
    fake.bad.add("biosses")
    runs = tmp_path / "runs"
    argv = ["benchmark", "--datasets", "gad,biosses,hoc", "--seeds", "1", "--model", str(fake.model), "--runs-dir",
            str(runs), "--no-progress", "--executor", "local"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "blurbkit: error: biosses seed 0 [standard]: biosses: no such split"
    # 2 slots: gad and biosses were submitted, hoc never started; nothing stored for biosses
    assert [c.dataset for c in fake.trained] == ["gad"]
    assert [r["dataset"] for r in ResultsStore(runs / "results.sqlite").rows()] == ["gad"]
    assert main([*argv, "--keep-going"]) == 1
    captured = capsys.readouterr()
    rows = {r["dataset"]: r["status"] for r in ResultsStore(runs / "results.sqlite").rows()}
    assert rows == {"gad": "ok", "biosses": "failed", "hoc": "ok"}
    assert "failed: biosses seed 0 [standard]: biosses: no such split" in captured.err
    assert "| BIOSSES | — (1 failed) |" in captured.out


def test_a_crashed_run_is_retried_then_stored_as_failed(fake, sync, tmp_path, capsys):
    fake.crash = {"biosses": 1, "gad": 5}
    runs = tmp_path / "runs"
    argv = ["benchmark", "--datasets", "gad,biosses", "--seeds", "1", "--model", str(fake.model), "--runs-dir",
            str(runs), "--no-progress", "--executor", "local", "--retries", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "biosses seed 0 [standard]: RuntimeError: worker ran out of memory" in err and "retrying (2 of 2)" in err
    assert "gad seed 0 [standard]: FAILED after 2 attempt(s): RuntimeError: worker ran out of memory" in err
    rows = {r["dataset"]: r for r in ResultsStore(runs / "results.sqlite").rows()}
    assert rows["biosses"]["status"] == "ok" and rows["gad"]["status"] == "failed"
    assert rows["gad"]["error"].startswith("RuntimeError: worker ran out of memory")


def test_ctrl_c_releases_the_claims_of_the_runs_in_flight(fake, sync, tmp_path, monkeypatch):
    def interrupted(timeout: float) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(sync, "wait", interrupted)
    runs = tmp_path / "runs"
    assert main(_benchmark(fake.model, runs, 3)) == 130
    assert len(sync.submitted) == 2 and sync.closed == 1  # 2 slots: the third run was never claimed
    with sqlite3.connect(runs / "results.sqlite") as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_run_all_puts_grids_of_several_encoders_on_one_executor(fake, sync, tmp_path):
    """`ablate --study pretraining`: one grid per pretrained encoder (its own model label), all at once."""
    from blurbkit.experiments.benchmark import Benchmark
    from blurbkit.train.config import FinetuneConfig

    store = ResultsStore(tmp_path / "results.sqlite")
    bench = Benchmark(store=store, runs_dir=tmp_path / "runs", study="pretraining", executor=sync, progress=False)
    grids = [([(name, FinetuneConfig("biosses", seed=seed, model=str(fake.model))) for seed in range(2)], f"encoder-{name}")
             for name in ("mlm", "electra")]
    bench.run_all(grids, "full")
    assert sorted((r["model"], r["variant"], r["seed"]) for r in store.rows()) == [
        ("encoder-electra", "electra", 0), ("encoder-electra", "electra", 1), ("encoder-mlm", "mlm", 0), ("encoder-mlm", "mlm", 1)]
    assert len(sync.submitted) == 4 and sync.closed == 1
    assert [len(bench.rows_for(configs, label, "full")) for configs, label in grids] == [2, 2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [
    ["ablate", "--study", "stability", "--datasets", "biosses", "--seeds", "1"],
    ["ablate", "--study", "relation", "--datasets", "ddi", "--seeds", "1"],
    ["benchmark", "--datasets", "biosses", "--seeds", "1"],
])
@pytest.mark.parametrize(("flags", "message"), [
    (["--executor", "slurm"], "unknown executor 'slurm'"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:{port}"], "no Ray cluster answers at 127.0.0.1:"),
    (["--workers", "2"], "--workers: only with --executor local|ray"),
    (["--executor", "local", "--ray-address", "127.0.0.1:6379"], "--ray-address: only with --executor ray"),
    (["--executor", "local", "--threads-per-run", "0"], "--threads-per-run 0: must be at least 1"),
    (["--executor", "local", "--workers", "0"], "--workers 0: must be at least 1"),
    (["--executor", "ray", "--retries", "-1"], "--retries -1: must be at least 0"),
])
def test_bad_executor_options_are_one_line_exit_2_and_nothing_stored(fake, tmp_path, capsys, command, flags, message):
    runs = tmp_path / "runs"
    flags = [flag.format(port=_closed_port()) for flag in flags]
    assert main([*command, "--model", str(fake.model), "--runs-dir", str(runs), *flags]) == 2  # no hang: pytest-timeout
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blurbkit: error: ") and message in err[0], err
    assert not (runs / "results.sqlite").exists() and not fake.trained


def test_an_address_that_answers_but_is_not_ray_is_one_line_within_seconds(fake, tmp_path, capsys):
    """An HTTP server (the dashboard's port, say) takes the connection; ray.init would then retry
    for minutes. The address is refused first, in one line."""
    import http.server
    import threading
    import time

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # the server's own lines are not blurbkit's
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runs = tmp_path / "runs"
    try:
        started = time.monotonic()
        code = main(["benchmark", "--datasets", "biosses", "--seeds", "1", "--model", str(fake.model), "--runs-dir",
                     str(runs), "--executor", "ray", "--ray-address", f"127.0.0.1:{server.server_address[1]}"])
        assert code == 2 and time.monotonic() - started < 10
    finally:
        server.shutdown()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "answers but is not a Ray cluster's address" in err[0], err
    assert not (runs / "results.sqlite").exists() and not fake.trained


def test_workers_caps_the_runs_ray_places_at_once(monkeypatch):
    """--workers on Ray: at most N runs of this sweep at once on a cluster that holds more (others
    may use it too); without it, as many as the cluster's CPUs hold at --threads-per-run."""
    import ray

    from blurbkit.experiments.ray_executor import RayExecutor

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0})
    executor = RayExecutor.__new__(RayExecutor)
    for threads, workers, slots in ((2, None, 8), (2, 3, 3), (4, 8, 4), (32, None, 1)):
        executor.threads, executor.workers = threads, workers
        assert executor._cluster_slots() == slots, (threads, workers)

    # A driver that submits a whole grid at once (stilt --matrix): past the cap, runs wait here.
    sent: list[str] = []

    class Remote:
        def remote(self, task: str) -> str:
            sent.append(task)
            return f"ref-{task}"

    monkeypatch.setattr(ray, "wait", lambda refs, num_returns, timeout: (refs[:1], refs[1:]))
    monkeypatch.setattr(ray, "get", lambda ref: ref)
    for workers, at_once in ((2, 2), (None, 5)):  # without --workers, all of them: Ray's queue
        sent.clear()
        executor.threads, executor.workers, executor._refs, executor._backlog = 1, workers, {}, deque()
        executor._remote, executor.slots = Remote(), executor._cluster_slots()
        for run in range(5):
            executor.submit(f"run{run}")
        assert len(sent) == at_once
        assert executor.wait(1.0) == ["ref-run0"]
        assert len(sent) == min(5, at_once + 1) and len(executor._refs) == min(4, at_once)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def _tiny_study(tiny_model, shared_data, runs):
    return ["ablate", "--study", "stability", "--datasets", "biosses", "--variants", "standard,reinit1", "--seeds", "1",
            "--data", str(shared_data), "--model", str(tiny_model), "--runs-dir", str(runs), "--epochs", "1",
            "--batch-size", "8", "--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "16",
            "--max-length", "32", "--no-progress"]


def _scores(runs: Path) -> dict[str, tuple]:
    return {r["run_key"]: (r["variant"], r["dev_score"], r["test_score"], r["dev_metrics"], r["test_metrics"])
            for r in ResultsStore(runs / "results.sqlite").rows()}


@pytest.mark.timeout(300)
def test_the_local_pool_stores_the_digits_this_process_stores(tiny_model, shared_data, tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker runs (--threads-per-run 1)
    try:
        assert main(_tiny_study(tiny_model, shared_data, tmp_path / "here")) == 0
    finally:
        torch.set_num_threads(threads)
    assert main([*_tiny_study(tiny_model, shared_data, tmp_path / "pool"), "--executor", "local", "--workers", "2"]) == 0
    assert "executor local: 2 runs at once" in capsys.readouterr().err
    here, pool = _scores(tmp_path / "here"), _scores(tmp_path / "pool")
    assert len(pool) == 2 and here == pool


@pytest.mark.ray
@pytest.mark.timeout(900)  # Ray start-up is slow on a busy 2-core machine
def test_a_study_on_local_ray_stores_the_digits_this_process_stores(tiny_model, shared_data, tmp_path):
    # Ray in a process of its own: one pytest process initialises Ray once at most (tests/test_sweep_ray.py).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    argv = [*_tiny_study(tiny_model, shared_data, tmp_path / "ray"), "--executor", "ray"]
    done = subprocess.run([sys.executable, "-m", "blurbkit", *argv], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "executor ray: " in done.stderr
    # Against this process at one thread per run, which stores the local pool's digits (the test above):
    # a second pool of fresh processes would only add their start-up to the suite.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_tiny_study(tiny_model, shared_data, tmp_path / "here")) == 0
    finally:
        torch.set_num_threads(threads)
    on_ray, here = _scores(tmp_path / "ray"), _scores(tmp_path / "here")
    assert len(on_ray) == 2 and on_ray == here
