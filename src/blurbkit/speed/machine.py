"""What a speed number depends on: the machine, its load, a matmul peak measured in the same run,
and peak memory per phase."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    info = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def matmul_peak(dtype: torch.dtype, size: int = 2048, seconds: float = 1.0) -> float:
    """GFLOP/s of a square matmul in `dtype`: the best of several timed rounds."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    flop = 2 * size**3
    best, deadline = 0.0, time.perf_counter() + seconds
    a @ b  # warm-up: kernels chosen, memory touched
    while True:
        _sync()
        start = time.perf_counter()
        for _ in range(3):
            a @ b
        _sync()
        best = max(best, 3 * flop / (time.perf_counter() - start) / 1e9)
        if time.perf_counter() > deadline:
            return round(best, 1)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def release_memory() -> None:
    """Give freed memory back to the OS between phases, so one phase's peak is not the other's."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@contextmanager
def peak_memory() -> Iterator[dict[str, Any]]:
    """Peak resident memory of the process (MB) while the block runs (GPU: peak allocated).

    Linux resets the high-water mark through /proc/self/clear_refs; where that fails, `peak_mb`
    is the process's lifetime peak and `phase_peak` says so."""
    release_memory()
    result: dict[str, Any] = {"start_mb": _rss_mb("VmRSS")}
    try:
        Path("/proc/self/clear_refs").write_text("5")
        result["phase_peak"] = True
    except OSError:
        result["phase_peak"] = False
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    yield result
    result["peak_mb"] = _rss_mb("VmHWM")
    if torch.cuda.is_available():
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    for key, value in result.items():
        if isinstance(value, float):
            result[key] = round(value, 1)
