"""The full BLURB protocol (`blurbkit benchmark --protocol full`): the grid as data, the choice on
dev, the cost model, bad input refused before anything is stored, and the local process pool end to
end, with the driver killed mid-sweep and started again."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fake_model_dir

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.experiments.cost import simulate
from blurbkit.experiments.protocol import DatasetProtocol, choose, grid_for, parse_grid
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore
from blurbkit.train.config import FinetuneConfig

REPO = Path(__file__).resolve().parents[1]
TINY_GRID = "lr=1e-5,5e-5;bs=8;epochs=1;select=1"
BUDGET = ["--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "24"]


def test_grids_are_data_and_the_override_is_parsed():
    assert parse_grid("lr=1e-5,3e-5;bs=16,32;epochs=3;select=2") == {
        "lr": (1e-5, 3e-5), "batch_size": (16, 32), "epochs": (3,), "selection_seeds": 2}
    grid = grid_for("biosses")
    assert grid.lr == (1e-5, 3e-5, 5e-5) and grid.batch_size == (16, 32) and grid.epochs == (30, 60)
    protocol = DatasetProtocol.make(FinetuneConfig("biosses"))
    # 12 points x 3 search seeds; the 10 test seeds reuse the 3 search runs of the chosen point
    assert protocol.test_seeds == 10 and protocol.run_count() == 12 * 3 + 7
    # seed-major: a sweep stopped after 12 runs has seen every point once
    runs = protocol.selection_runs()
    assert [c.seed for c in runs] == [0] * 12 + [1] * 12 + [2] * 12
    assert len({(c.lr, c.batch_size, c.epochs) for c in runs[:12]}) == 12
    assert DatasetProtocol.make(FinetuneConfig("gad"), parse_grid(TINY_GRID), 2).run_count() == 3


@pytest.mark.parametrize("text", ["lr=abc", "lr=1e-5;bs=16.5", "lr=-1", "depth=3", "lr=", "select=1,2", ";;;", ""])
def test_a_bad_grid_is_one_error(text):
    with pytest.raises(BlurbkitError, match="--grid"):
        parse_grid(text)


def test_the_best_mean_dev_score_wins_and_ties_go_to_the_first_point():
    protocol = DatasetProtocol.make(FinetuneConfig("gad"), parse_grid("lr=1e-5,3e-5,5e-5;bs=8;epochs=1"))
    key = '{{"batch_size": 8, "epochs": 1, "lr": {}}}'.format
    assert choose(protocol, {key(1e-05): [0.5, 0.7], key(3e-05): [0.6, 0.6], key(5e-05): [0.9, 0.1]})[0]["lr"] == 1e-5
    assert choose(protocol, {key(5e-05): [0.7]}) == ({"lr": 5e-5, "batch_size": 8, "epochs": 1}, 0.7)
    assert choose(protocol, {}) is None


def test_a_point_with_an_errored_selection_run_ranks_below_every_complete_point():
    protocol = DatasetProtocol.make(FinetuneConfig("gad"), parse_grid("lr=1e-5,3e-5,5e-5;bs=8;epochs=1"))
    key = '{{"batch_size": 8, "epochs": 1, "lr": {}}}'.format
    dev = {key(1e-05): [0.5, 0.5], key(3e-05): [0.6, 0.6], key(5e-05): [0.9]}  # 5e-5: one seed diverged
    assert choose(protocol, dev)[0]["lr"] == 5e-5
    assert choose(protocol, dev, {key(5e-05): 1}) == ({"lr": 3e-5, "batch_size": 8, "epochs": 1}, 0.6)
    only_partial = {key(5e-05): [0.9]}
    assert choose(protocol, only_partial, {key(5e-05): 1})[0]["lr"] == 5e-5  # still better than no choice


def test_quick_full_protocol_searches_the_quick_grid_around_the_budget():
    from blurbkit.cli.benchmark_full import protocols_from_args
    from blurbkit.cli.main import build_parser

    args = build_parser().parse_args(["benchmark", "--protocol", "full", "--quick", "--datasets", "biosses,gad"])
    biosses, gad = protocols_from_args(args, {})
    assert biosses.grid == grid_for("biosses", protocol="quick") and biosses.grid.epochs == (15,)
    assert gad.grid.lr == (5e-5, 1e-4) and gad.grid.selection_seeds == 2
    args = build_parser().parse_args(["benchmark", "--protocol", "full", "--datasets", "biosses"])
    assert protocols_from_args(args, {})[0].grid == grid_for("biosses")


def test_wall_time_waits_for_the_search_before_the_test_runs():
    # one dataset: two 10 s search runs, then two 5 s test runs; on 2 slots 10 + 5, on 1 slot 30
    assert simulate([([10, 10], [5, 5])], 2) == 15
    assert simulate([([10, 10], [5, 5])], 1) == 30
    assert simulate([([], [5, 5, 5])], 2) == 10


def test_the_plan_prints_runs_cpu_hours_and_wall_time_on_1_4_16_machines(tmp_path, monkeypatch, capsys):
    """`benchmark --protocol full --plan` from a calibration (made up here: 2,500 s per run) on a
    2-core machine: 4 search runs, then 1 more test seed; nothing trained, nothing stored."""
    import blurbkit.experiments.cost as cost
    import blurbkit.experiments.executors as executors
    import blurbkit.experiments.plan as plan
    from blurbkit.experiments.cost import Rates

    sizes = {"train": 64, "dev": 16, "test": 16}
    monkeypatch.setattr(plan, "split_sizes", lambda config: sizes)
    monkeypatch.setattr(cost, "split_sizes", lambda config: sizes)
    # one epoch: 64 / 0.064 = 1,000 s of training, (16 x 2 + 16) / 0.032 = 1,500 s of scoring
    monkeypatch.setattr(plan, "calibrate", lambda config, threads: Rates(0.064, 0.032, 0.0, "calibration"))
    monkeypatch.setattr(executors, "machine_cores", lambda: 2)
    runs = tmp_path / "runs"
    argv = ["benchmark", "--protocol", "full", "--datasets", "gad", "--seeds", "3", "--grid",
            "lr=1e-5,3e-5;bs=16;epochs=1;select=2", "--model", str(_fake_model(tmp_path)), "--data", str(tmp_path),
            "--runs-dir", str(runs), "--plan", "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| gad | 5 | 0 | 5 | 2500 | 3.47 | calibration: 0.1 train ex/s |" in out
    assert "runs: 5 in all, 5 to run; CPU-hours: 3.47 (1 thread(s) per run on this machine)" in out
    assert "wall time on 1 run at once: 3.5 h" in out
    # 2 slots: two rounds of search, then the test seed (7,500 s); 8 or 32 slots: one round, then it
    assert "wall time on 1 machine(s) like this one (2 runs at once): 2.1 h" in out
    assert "wall time on 4 machine(s) like this one (8 runs at once): 1.4 h" in out
    assert "wall time on 16 machine(s) like this one (32 runs at once): 1.4 h" in out
    assert not (runs / "results.sqlite").exists()


def _fake_model(tmp_path: Path) -> Path:
    return fake_model_dir(tmp_path)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("flags", "message"), [
    (["--grid", "lr=1e-5,fast"], "--grid lr: 'fast' is not a number"),
    (["--executor", "slurm"], "unknown executor 'slurm'"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:{port}"], "no Ray cluster answers at 127.0.0.1:"),
    (["--runs-dir", "{file}/runs"], "cannot write the --runs-dir here"),
    (["--lr", "3e-5"], "--lr: the full protocol searches these"),
    (["--datasets", "gad,nosuch"], "unknown dataset 'nosuch'"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_stored(tmp_path, capsys, flags, message):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    flags = [f.format(port=_closed_port(), file=blocker) for f in flags]
    runs = tmp_path / "runs"
    argv = ["benchmark", "--protocol", "full", "--datasets", "gad", "--model", str(_fake_model(tmp_path)),
            "--data", str(tmp_path), "--runs-dir", str(runs), *flags]
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blurbkit: error: ") and message in err[0], err
    assert not (runs / "results.sqlite").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def sweep_argv(tiny_model, shared_data, runs, *extra):
    return ["benchmark", "--protocol", "full", "--datasets", "gad", "--seeds", "3", "--grid", TINY_GRID,
            "--data", str(shared_data), "--model", str(tiny_model), "--runs-dir", str(runs), "--no-progress", *BUDGET, *extra]


@pytest.mark.timeout(240)
def test_local_pool_sweep_survives_a_killed_driver(tiny_model, shared_data, tmp_path, capsys):
    """2 search runs, then 2 more test seeds: the driver is killed (with its pool) after the first
    stored run; the second driver trains only what is missing and every run is stored once."""
    runs = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, "-m", "blurbkit", *sweep_argv(tiny_model, shared_data, runs)],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store_path = runs / "results.sqlite"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            if store_path.exists() and ResultsStore(store_path).rows(study="protocol"):
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the driver finished before it could be killed"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    stored_before = len(ResultsStore(store_path).rows(study="protocol"))
    assert 1 <= stored_before < 4
    assert main(sweep_argv(tiny_model, shared_data, runs)) == 0
    out, err = capsys.readouterr()
    rows = ResultsStore(store_path).rows(study="protocol")
    assert len(rows) == 4 and len({r["run_key"] for r in rows}) == 4
    assert all(r["status"] == "ok" for r in rows)
    executed = int(out.split("; actual ")[1].split(" runs")[0])  # plan vs actual: the plan had the first runs' speed
    assert 1 <= executed <= 4 - stored_before  # a run finished on disk but not stored is stored, not retrained
    # one line per run this driver trained, as it finished
    finished = re.compile(r"blurbkit: gad seed \d lr \S+ bs 8 ep 1: dev \d+\.\d\d test \d+\.\d\d \(\d+ s on .+\)$")
    assert len([line for line in err.splitlines() if finished.match(line)]) == executed, err
    assert "| GAD | " in out and "(n=3)" in out
    assert (runs / "protocol-custom-train16-dev8-test24.md").is_file()
    # The resumed sweep's table is the uninterrupted one's, to the digit.
    assert main(sweep_argv(tiny_model, shared_data, tmp_path / "whole")) == 0
    whole = capsys.readouterr().out
    assert _digits(runs) == _digits(tmp_path / "whole")
    assert _table_rows(out, "| GAD | ") == _table_rows(whole, "| GAD | ") != []


def test_a_driver_stopped_mid_run_ends_in_one_line(tiny_model, shared_data, tmp_path):
    """SIGTERM to the driver and its pool while runs train (a scheduler's stop; Ctrl-C takes the same
    path with SIGINT): one line, exit 143, no traceback and no warning (workers once left tqdm's
    semaphores for Python's resource tracker to report), and no worker left behind."""
    runs = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    argv = sweep_argv(tiny_model, shared_data, runs)
    argv[argv.index("--max-train-examples") + 1] = "4000"  # long enough to be stopped mid-run
    driver = subprocess.Popen([sys.executable, "-m", "blurbkit", *argv], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        deadline, training = time.monotonic() + 120, False
        while time.monotonic() < deadline and driver.poll() is None and not training:
            training = any((runs / "protocol" / "grid" / "gad").glob("seed0-*/.progress.json"))
            time.sleep(0.2)
        assert training and driver.poll() is None, "no run was training when the driver was to be stopped"
        os.killpg(driver.pid, signal.SIGTERM)
        err = driver.communicate(timeout=60)[1]
    finally:
        if driver.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(driver.pid, signal.SIGKILL)
            err += driver.communicate()[1]
    assert driver.returncode == 143, err
    assert err.strip().splitlines()[-1] == "blurbkit: terminated", err
    assert "Traceback" not in err and "Warning" not in err and "leaked" not in err, err
    deadline, left = time.monotonic() + 10, ["?"]
    while left and time.monotonic() < deadline:  # the whole session (driver, fork server, workers) ends
        left = _live_in_session(driver.pid)
        time.sleep(0.2)
    assert left == [], left


def _live_in_session(sid: int) -> list[str]:
    """Processes of session `sid` that are not zombies (whether an orphan's zombie is reaped soon depends
    on the machine's init, not on blurbkit)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, session
            if fields[0] != "Z" and int(fields[3]) == sid:
                live.append(stat.parent.name)
    return live


def _digits(runs: Path) -> dict[str, tuple]:
    return {r["run_key"]: (r["dev_score"], r["test_score"], r["test_metrics"])
            for r in ResultsStore(runs / "results.sqlite").rows(study="protocol")}


def _table_rows(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(prefix)]


def test_stored_speeds_are_scaled_to_the_planned_threads_per_run(monkeypatch):
    """A run measured at 2 threads, planned at 1: half its examples/s (the same CPU time); a row from
    before the thread count was stored is taken as it is, and says so."""
    import blurbkit.experiments.cost as cost

    monkeypatch.setattr(cost, "split_sizes", lambda config: {"train": 50, "dev": 10, "test": 20})
    row = {"status": "ok", "train_examples_per_second": 20.0, "wall_seconds": 100.0, "hyperparameters": "{}", "threads": 2}
    base = FinetuneConfig(dataset="biosses", epochs=4)
    at_two = cost.rates_from_rows([row], base, threads=2)
    at_one = cost.rates_from_rows([row], base, threads=1)
    assert at_two.train == 20.0 and at_two.evaluate == pytest.approx((10 * 5 + 20) / (100 - 50 * 4 / 20))
    assert at_one.train == 10.0 and at_one.evaluate == pytest.approx(at_two.evaluate / 2)
    assert at_one.source == "store (1 run, 2 threads)"
    unknown = cost.rates_from_rows([{**row, "threads": None}], base, threads=1)
    assert unknown.train == 20.0 and unknown.source == "store (1 run, threads not recorded)"


def test_a_grid_plan_times_each_batch_size_by_the_stored_runs_at_that_batch_size(monkeypatch):
    """Two stored runs of GAD, 40 train examples/s at batch 16 and 60 at batch 32, GAD's recipe (a run
    at the recipe's batch size stores none), both 10 s of scoring 30 examples: a grid point's runs
    are timed at their own batch size's rate."""
    import json

    import blurbkit.experiments.cost as cost
    import blurbkit.experiments.plan as plan

    sizes = {"train": 600, "dev": 10, "test": 10}
    monkeypatch.setattr(cost, "split_sizes", lambda config: sizes)
    monkeypatch.setattr(plan, "split_sizes", lambda config: sizes)
    monkeypatch.setattr(plan, "calibrate", lambda config, threads: pytest.fail("stored speeds should be used"))

    def row(batch: int, rate: float) -> dict:
        return {"run_key": f"k{batch}", "study": "earlier", "budget": "full", "dataset": "gad", "model": "m", "status": "ok",
                "train_examples_per_second": rate, "wall_seconds": 600 / rate + 10, "threads": 1, "precision": None,
                "hyperparameters": json.dumps({"batch_size": None if batch == 32 else batch, "epochs": 1})}

    protocol = DatasetProtocol.make(FinetuneConfig("gad"), parse_grid("lr=1e-5;bs=16,32;epochs=1;select=1"), 1)
    made = plan.make_plan([protocol], [row(16, 40.0), row(32, 60.0)], "m", "full", threads=1, cores=2)
    # overhead 8 s + 600 examples at the batch size's rate + (10 x 2 + 10) scored at 3 examples/s
    assert sorted(made.datasets[0].search) == pytest.approx([8 + 10 + 10, 8 + 15 + 10])
    assert cost.rates_from_rows([row(16, 40.0), row(32, 60.0)], FinetuneConfig("gad"), 1, None, 32).source == \
        "store (1 run, 1 thread, batch 32)"


def test_a_run_paused_mid_training_does_not_set_the_plans_speed(monkeypatch):
    """Three stored runs, one stopped for an hour mid-training (its time, and so its rate, counts
    the pause): the plan takes the median run's rate, not the longest run's."""
    import blurbkit.experiments.cost as cost

    monkeypatch.setattr(cost, "split_sizes", lambda config: {"train": 600, "dev": 10, "test": 10})
    row = {"status": "ok", "hyperparameters": "{}", "threads": 1}
    runs = [{**row, "train_examples_per_second": rate, "wall_seconds": 600 / rate + 10} for rate in (0.16, 50.0, 60.0)]
    assert cost.rates_from_rows(runs, FinetuneConfig(dataset="gad", epochs=1), threads=1).train == 50.0


def test_a_plan_prefers_runs_of_this_machines_precision_and_says_when_it_has_only_another_class(monkeypatch):
    """Merged stores hold runs from bf16 and fp32-only machines, 2-4x apart: this machine's kind (or
    runs that did not record one) first; another kind's only when there is nothing else, named."""
    import blurbkit.experiments.cost as cost

    monkeypatch.setattr(cost, "split_sizes", lambda config: {"train": 50, "dev": 10, "test": 20})
    row = {"status": "ok", "train_examples_per_second": 20.0, "wall_seconds": 100.0, "hyperparameters": "{}", "threads": 1}
    base = FinetuneConfig(dataset="biosses", epochs=4)
    fast_bf16 = {**row, "train_examples_per_second": 60.0, "wall_seconds": 200.0, "precision": "bfloat16"}
    fp32 = {**row, "precision": "fp32"}
    assert cost.rates_from_rows([fast_bf16, fp32], base, 1, "fp32").train == 20.0
    assert cost.rates_from_rows([fast_bf16, fp32], base, 1, "bfloat16").train == 60.0
    assert cost.rates_from_rows([fast_bf16, {**row, "precision": None}], base, 1, "fp32").train == 20.0
    only_other = cost.rates_from_rows([fast_bf16], base, 1, "fp32")
    assert only_other.train == 60.0
    assert only_other.source == "store (1 run, 1 thread; measured in bfloat16, this machine computes fp32: another CPU class)"


def test_calibration_trains_at_its_last_epochs_rate(monkeypatch):
    """The first epoch of a 64-example run holds the run's warm-up, which a real run pays once: the
    plan's training rate is the second epoch's (a first version read the whole run's, 1.3-1.6x slow)."""
    import blurbkit.train.run as run
    from blurbkit.experiments.cost import calibrate

    seen = []

    def fake_run(config):
        seen.append(config)
        return {"train_windows": 64, "train_examples": 64, "epoch_train_seconds": [6.0, 4.0], "train_seconds": 10.0,
                "train_examples_per_second": 12.8, "wall_seconds": 13.0, "encode_seconds": 0.0,
                "dev": {"n": 32}, "test": {"n": 32}}

    monkeypatch.setattr(run, "run_finetune", fake_run)
    rates = calibrate(FinetuneConfig("gad"), 1)
    assert seen[0].epochs == 2 and seen[0].max_train_examples == 64
    assert rates.train == 16.0 and rates.evaluate == pytest.approx((32 * 3 + 32) / 3.0)


def test_calibration_charges_a_full_runs_padding_not_its_own(monkeypatch):
    """64 examples in a few batches pad far more than a full run's length-grouped batches (GAD at batch
    32: 1.79x vs 1.03x): the plan's rate is the last epoch's time per computed token, charged for the
    windows' own tokens (here 3,200 positions computed for 2,560 tokens: 1.25x the plain rate)."""
    import blurbkit.train.run as run
    from blurbkit.experiments.cost import calibrate

    metrics = {"train_windows": 64, "train_examples": 64, "epoch_train_seconds": [6.0, 4.0], "train_seconds": 10.0,
               "epoch_padded_tokens": [3100, 3200], "train_tokens": 2560,
               "train_examples_per_second": 12.8, "wall_seconds": 13.0, "encode_seconds": 0.0,
               "dev": {"n": 32}, "test": {"n": 32}}
    monkeypatch.setattr(run, "run_finetune", lambda config: metrics)
    assert calibrate(FinetuneConfig("gad"), 1).train == pytest.approx(20.0)
    # Plain-shuffled full runs pad as much as the calibration: nothing to take off.
    assert calibrate(FinetuneConfig("gad", group_by_length=False), 1).train == pytest.approx(16.0)
    metrics["epoch_padded_tokens"] = [3100]  # not one count per timed epoch (a checkpoint from before them): plain rate
    assert calibrate(FinetuneConfig("gad"), 1).train == pytest.approx(16.0)


def test_each_epoch_of_a_run_times_its_training(tiny_model, shared_data):
    from blurbkit.train.api import finetune

    metrics = finetune("gad", out=None, data=str(shared_data), model=str(tiny_model), epochs=3, batch_size=8, lr=1e-4,
                       max_train_examples=16, max_eval_examples=8, max_test_examples=8, max_length=32, progress=False)
    assert len(metrics["epoch_train_seconds"]) == 3
    assert sum(metrics["epoch_train_seconds"]) == pytest.approx(metrics["train_seconds"], abs=0.02)
    # The positions each epoch computed: every window's tokens, and padding to each batch's longest row.
    assert len(metrics["epoch_padded_tokens"]) == 3
    # (the seeded 16-example sample has sentences of several lengths under max_length, so each epoch pads some)
    assert all(padded > metrics["train_tokens"] for padded in metrics["epoch_padded_tokens"])
    single = finetune("gad", out=None, data=str(shared_data), model=str(tiny_model), epochs=2, batch_size=1, lr=1e-4,
                      max_train_examples=6, max_eval_examples=4, max_test_examples=4, max_length=32, progress=False)
    assert single["epoch_padded_tokens"] == [single["train_tokens"]] * 2  # one row per batch: nothing padded
