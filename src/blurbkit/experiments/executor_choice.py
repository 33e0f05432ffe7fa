"""An executor by name (`--executor local|ray`): the local process pool (executors.py) or Ray tasks
(ray_executor.py, which imports ray only when it starts)."""

from __future__ import annotations

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.executors import Executor, LocalExecutor
from blurbkit.experiments.ray_executor import RayExecutor

EXECUTORS = ("local", "ray")


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise BlurbkitError(f"unknown executor {name!r} (one of {', '.join(EXECUTORS)})")
    return name


def make_executor(name: str, threads: int, workers: int | None, ray_address: str | None = None,
                  gpus: float = 0.0) -> Executor:
    """`threads` per run; `workers` runs at once (None: as many as the local cores, or the Ray
    cluster's CPUs, hold); Ray places runs by their declared CPUs/GPUs on the cluster at
    `ray_address` (None: a local Ray)."""
    if check_executor(name) == "ray":
        return RayExecutor(ray_address, threads=threads, gpus=gpus, workers=workers)
    return LocalExecutor(threads, workers)
