"""The Ray executor: each run a Ray task declaring its CPUs (threads per run) and GPUs, on an
existing cluster (`--ray-address HOST:PORT`) or a local Ray instance. Ray places the tasks and
re-runs a task whose node or worker died (max_retries); an error *inside* a run comes back as a
`RunOutcome` and the driver decides on retrying it. Nothing here writes the store."""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.executors import RunOutcome, RunTask, execute_run, machine_cores

CONNECT_TIMEOUT = 3.0  # seconds a cluster address has to answer before we say so
# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, its client server)
# answers with a SETTINGS frame of its own; anything else (the dashboard's HTTP port) does not.
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS_FRAME = 4
SYSTEM_RETRIES = 3  # Ray re-runs a task whose worker or node died this many times
LOCAL_OBJECT_STORE = 200 * 1024 * 1024  # results and shipped run directories are small


def _run_on_ray(task: RunTask) -> RunOutcome:
    import ray

    outcome = execute_run(task)
    outcome.node = ray.get_runtime_context().get_node_id()
    return outcome


def check_address(address: str) -> None:
    """One line within seconds when nothing answers at the address (ray.init would wait a minute)."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise BlurbkitError(f"--ray-address {address!r}: expected HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        sock = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT)
    except OSError as err:
        raise BlurbkitError(f"no Ray cluster answers at {address} within {CONNECT_TIMEOUT:g} s ({err.strerror or err})") from None
    with sock:
        # A cluster with RAY_USE_TLS speaks gRPC inside TLS: the plain hello is not for it.
        wrong = None if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") else _not_grpc(sock)
    if wrong:  # ray.init would retry such an address for minutes
        raise BlurbkitError(f"{address} answers but is not a Ray cluster's address (it {wrong}; the dashboard's port? "
                            "`ray start --head` prints the address, port 6379 by default)")


def _not_grpc(sock: socket.socket) -> str | None:
    """None when the server at `sock` answers HTTP/2's preface with a SETTINGS frame, as gRPC
    servers do (or with a TLS record); else what it did instead."""
    sock.settimeout(CONNECT_TIMEOUT)
    head = b""
    try:
        sock.sendall(HTTP2_HELLO)
        while len(head) < 9:  # a frame header: length (3), type (1), flags (1), stream (4)
            chunk = sock.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        return f"said nothing to a gRPC hello within {CONNECT_TIMEOUT:g} s"
    except OSError as err:
        return f"dropped a gRPC hello ({err.strerror or err})"
    if head[:1] in (b"\x15", b"\x16"):  # a TLS alert or handshake: a TLS server, gRPC or not; ray.init will say
        return None
    return None if len(head) == 9 and head[3] == SETTINGS_FRAME else "does not speak gRPC"


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, threads: int = 1, gpus: float = 0.0, workers: int | None = None) -> None:
        import ray

        if address:
            check_address(address)
        # Ray's workers start elsewhere: relative PYTHONPATH entries would point nowhere there.
        if os.environ.get("PYTHONPATH"):
            os.environ["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)
        try:
            if address:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=machine_cores(), include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise BlurbkitError(f"cannot start or reach Ray{f' at {address}' if address else ''} ({err})") from None
        self.threads, self.workers = threads, workers
        self._remote = ray.remote(_run_on_ray).options(num_cpus=threads, num_gpus=gpus, max_retries=SYSTEM_RETRIES,
                                                      retry_exceptions=False)
        self._refs: dict[Any, RunTask] = {}
        # With `workers`: runs past the cap wait here, for drivers that submit a whole grid at once
        # (stilt --matrix). Without it every run goes to Ray at once: its queue is what an
        # autoscaling cluster grows by.
        self._backlog: deque[RunTask] = deque()
        self.slots = self._cluster_slots()

    def _cluster_slots(self) -> int:
        """Runs the cluster's CPUs hold at `threads` each, at most `workers` (a share of a cluster
        others use too)."""
        import ray

        fits = max(1, int(ray.cluster_resources().get("CPU", 1) // self.threads))
        return min(fits, self.workers) if self.workers else fits

    def submit(self, task: RunTask) -> None:
        self._backlog.append(task)
        self._fill()

    def _fill(self) -> None:
        while self._backlog and (not self.workers or len(self._refs) < self.slots):
            task = self._backlog.popleft()
            self._refs[self._remote.remote(task)] = task

    def wait(self, timeout: float) -> list[RunOutcome]:
        import ray

        self._fill()
        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # and whatever else finished meanwhile
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        outcomes = []
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                outcomes.append(ray.get(ref))
            except ray.exceptions.RayError as err:  # retries of a dead node/worker used up
                outcomes.append(RunOutcome(task.key.digest(), error=f"Ray: {type(err).__name__}: {str(err).splitlines()[0]}"))
        self.slots = self._cluster_slots()  # nodes come and go
        self._fill()
        return outcomes

    def running(self) -> int:
        return min(self.slots, len(self._refs))

    def close(self) -> None:
        import ray

        self._backlog.clear()
        for ref in self._refs:
            ray.cancel(ref, force=True)
        self._refs.clear()
        ray.shutdown()
