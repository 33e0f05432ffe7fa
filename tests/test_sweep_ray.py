"""The full protocol on Ray: a local Ray instance gives the same stored results as the local pool,
and a two-node cluster on this machine (loopback only) that loses a worker node mid-sweep still
stores every run exactly once. Marked `ray` (select with -m ray); CI runs them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.experiments.benchmark import model_label
from blurbkit.experiments.executors import machine_cores
from blurbkit.experiments.protocol import DatasetProtocol, parse_grid
from blurbkit.experiments.sweep import Sweep
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore
from blurbkit.train.config import FinetuneConfig

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]  # Ray start-up is slow on a busy 2-core machine

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
BUDGET = {"max_train_examples": 16, "max_eval_examples": 8, "max_test_examples": 24}
BUDGET_FLAGS = ["--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "24"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def _scores(path: Path) -> dict[str, tuple]:
    return {r["run_key"]: (r["seed"], r["dev_score"], r["test_score"], r["dev_metrics"], r["test_metrics"])
            for r in ResultsStore(path).rows(study="protocol")}


def test_local_ray_and_the_local_pool_store_the_same_results(tiny_model, shared_data, tmp_path, capsys):
    argv = ["benchmark", "--protocol", "full", "--datasets", "gad,biosses", "--seeds", "2",
            "--grid", "lr=1e-5,5e-5;bs=8;epochs=1;select=1", "--data", str(shared_data), "--model", str(tiny_model),
            "--no-progress", *BUDGET_FLAGS]
    # Ray in a process of its own: one pytest process initialises Ray once at most (the cluster test).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "blurbkit", *argv, "--runs-dir", str(tmp_path / "ray"), "--executor", "ray"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    # a local Ray instance gets this machine's usable cores (2 on the project machine, more or fewer in CI)
    assert f"executor ray: {machine_cores()} runs at once" in done.stderr
    assert main([*argv, "--runs-dir", str(tmp_path / "local"), "--executor", "local"]) == 0
    on_ray, local = _scores(tmp_path / "ray" / "results.sqlite"), _scores(tmp_path / "local" / "results.sqlite")
    assert len(on_ray) == 6 and on_ray == local  # same keys, identical digits


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_node(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`ray start --block` in a session of its own, so the node (raylet and its workers) is ended by its id."""
    return subprocess.Popen([str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                             "--num-gpus", "0", "--object-store-memory", str(80 * 1024 * 1024),
                             "--dashboard-agent-listen-port", str(_free_port()), *args],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(node: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if node.poll() is None:
        os.killpg(node.pid, sig)
        try:
            node.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()


@pytest.fixture
def two_nodes(tmp_path, monkeypatch):
    """A head and a worker node on loopback, one CPU each; dead nodes are noticed within seconds.
    No token authentication: nothing but this test reaches the loopback cluster."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               RAY_health_check_period_ms="500", RAY_health_check_timeout_ms="500", RAY_health_check_failure_threshold="3",
               RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    head = _ray_node(["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp,
                      "--disable-usage-stats"], env)
    address = f"127.0.0.1:{port}"
    worker = None
    try:
        deadline = time.monotonic() + 60
        while True:  # the GCS answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and head.poll() is None, "the Ray head did not start"
                time.sleep(0.5)
        worker = _ray_node(["--address", address], env)
        yield address, worker
    finally:
        if worker is not None:
            _stop(worker, signal.SIGKILL)
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def _runs_a_task(node_group: int) -> bool:
    """Whether the node started in process group `node_group` runs a task: a Ray worker (a child of
    the node's raylet, in a process group of its own) names itself after the task it runs
    (ray::_run_on_ray), ray::IDLE between tasks."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::_run_on_ray"):
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if os.getpgid(parent) == node_group:
                    return True
        except OSError:  # gone meanwhile
            continue
    return False


def test_a_worker_node_killed_mid_sweep_still_stores_every_run_once(tiny_model, shared_data, tmp_path, two_nodes):
    import ray

    from blurbkit.experiments.ray_executor import RayExecutor

    address, worker = two_nodes
    executor = RayExecutor(address)
    deadline = time.monotonic() + 60
    while ray.cluster_resources().get("CPU", 0) < 2:  # the worker node joined
        assert time.monotonic() < deadline, "the worker node did not join"
        time.sleep(0.5)
    head_node = ray.get_runtime_context().get_node_id()
    lost: list[str] = []  # the run the worker node was training when it was killed
    ran_on: dict[str, str] = {}

    def kill_worker_node(outcome):
        # One CPU per node: when a head run comes back with exactly one run still out (the driver
        # submits the next only after this call) and a process of the worker node is running a task,
        # that node is training that run. Kill the node under it: Ray has to run it again on the head.
        ran_on[outcome.digest] = outcome.node
        if not lost and outcome.node == head_node and len(executor._refs) == 1 and _runs_a_task(worker.pid):
            lost.append(next(iter(executor._refs.values())).key.digest())
            os.killpg(worker.pid, signal.SIGKILL)

    base = FinetuneConfig("gad", data=str(shared_data), model=str(tiny_model), **BUDGET)
    protocol = DatasetProtocol.make(base, parse_grid("lr=1e-5,3e-5,5e-5;bs=8;epochs=1;select=2"), 3)
    label = model_label(str(tiny_model))
    store = ResultsStore(tmp_path / "results.sqlite")
    sweep = Sweep(store, executor, tmp_path / "runs", label, "custom", ship=True, progress=False, on_outcome=kill_worker_node)
    result = sweep.run([protocol])
    assert lost, "the worker node was never killed under a run"
    assert ran_on[lost[0]] == head_node  # the run it held came back from the head: run again, not lost
    assert len(ran_on) == 7
    rows = store.rows(study="protocol")
    assert len(rows) == protocol.run_count() == 7
    assert len({r["run_key"] for r in rows}) == 7 and all(r["status"] == "ok" for r in rows)
    assert not result.failures and result.per_dataset["gad"]["n"] == 3
    # shipped run directories landed under --runs-dir on the driver's side
    assert all((Path(r["run_dir"]) / "metrics.json").is_file() for r in rows)
