"""What a speed number depends on: the machine, its load, a matmul peak measured in the same run,
and peak memory per phase."""

from __future__ import annotations

import ctypes
import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch

from blurbkit.errors import BlurbkitError
from blurbkit.runtime.capability import ENV_CPU_DTYPES, ENV_ONEDNN_ISA, capability, dtype_name


def cpu_name() -> str:
    return capability().cpu.model


def machine_info() -> dict[str, Any]:
    cap = capability()
    info = {
        "cpu": cap.cpu.model,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "device": cap.device,
        "cpu_flags": cap.relevant_flags,
        "native_dtypes": list(cap.native_dtypes),
    }
    if cap.override:
        info["dtype_override"] = f"{ENV_CPU_DTYPES}={cap.override}"
    # Kernels kept below the CPU's own instructions: the figures are then those of that ISA class.
    limits = {name: os.environ[name] for name in (*ENV_ONEDNN_ISA, "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
              if os.environ.get(name)}
    if limits:
        info["isa_limits"] = limits
        info["kernel_isa"] = torch.backends.cpu.get_cpu_capability()  # what ATen dispatches to
    if cap.gpu:
        info["gpu"] = cap.gpu
    return info


TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def measure_peaks(seconds: float = 1.0, size: int = 2048) -> tuple[dict[str, float], dict[str, str]]:
    """({dtype: GFLOP/s} for every native dtype of the device, {dtype: why it was not measured}).

    Only native dtypes are timed: an emulated bf16 matmul is minutes, not a peak, and no side
    of a comparison runs in it (autocast asks the same capability)."""
    cap = capability()
    peaks = {name: matmul_peak(TORCH_DTYPES[name], size=size, seconds=seconds) for name in cap.native_dtypes}
    return peaks, {name: why for name, why in cap.not_native.items() if name not in peaks}


def peak_of(peaks: dict[str, float], precision: str | None) -> tuple[str, float | None]:
    """(dtype name, its measured peak or None) for a side that ran in `precision` (None/"fp32" = fp32)."""
    name = dtype_name(precision or "fp32")
    return name, peaks.get(name)


def matmul_peak(dtype: torch.dtype, size: int = 2048, seconds: float = 1.0, allow_emulated: bool = False) -> float:
    """GFLOP/s of a square matmul in `dtype`: the best of several timed rounds.

    Refuses a dtype the hardware only emulates (runtime/capability.py) unless `allow_emulated`:
    one 2048^2 emulated bf16 matmul takes about a minute on a 2-core AVX2 CPU."""
    cap = capability()
    if not (allow_emulated or cap.native(dtype)):
        why = cap.not_native.get(dtype_name(dtype), "not native on this device")
        raise BlurbkitError(f"not timing a {dtype_name(dtype)} matmul: {why}")
    device = "cuda" if cap.device == "cuda" else "cpu"
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


def same_threads(threads: int | None = None) -> int:
    """One thread count for both sides of a comparison, set before either runs: `threads` if given,
    else torch's, lowered to a container's CPU quota (blurbkit's runner would lower it for its own
    side only, and the Hugging Face side would run oversubscribed). Returns the count."""
    from blurbkit.runtime.capability import cap_torch_threads

    if threads is not None:
        torch.set_num_threads(threads)
    else:
        cap_torch_threads()
    return torch.get_num_threads()
