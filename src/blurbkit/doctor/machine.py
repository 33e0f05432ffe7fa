"""The machine: torch, device, CPU flags, native dtypes, threads, allocator and memory (all notes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from blurbkit.doctor.check import Check


def machine_checks() -> Iterator[Check]:
    import torch

    from blurbkit.runtime.capability import ENV_CPU_DTYPES, capability, usable_cores

    cap = capability()
    cpu = cap.cpu
    yield Check("machine", "torch", "note", torch.__version__)
    yield Check("machine", "device", "note", cap.device + (f" ({cap.gpu})" if cap.gpu else ""))
    cores = f"{cap.report()['logical_cpus']} logical CPUs" + (f", {cpu.physical_cores} physical cores" if cpu.physical_cores else "")
    yield Check("machine", "cpu", "note", f"{cpu.model} ({cores})")
    yield Check("machine", "flags", "note", " ".join(cap.relevant_flags) or "none of avx2/avx512/amx/bf16/sve")
    native = ", ".join(cap.native_dtypes)
    if cap.bf16:
        native += "  (precision auto = bf16 autocast, fp32 master weights)"
    else:
        native += "  (precision auto = fp32: the main job runs, more slowly than on a bf16 CPU)"
    yield Check("machine", "native dtypes", "note", native)
    for dtype, why in cap.not_native.items():
        yield Check("machine", f"no {dtype}", "note", why)
    if cap.override:
        yield Check("machine", "override", "note", f"{ENV_CPU_DTYPES}={cap.override} (unset it to use every native dtype)")
    if cap.isa_limit:
        yield Check("machine", "isa limit", "note", f"{cap.isa_limit} (oneDNN kept to those instructions)")
    threads = f"torch {cap.torch_threads}"
    usable = usable_cores(cpu)  # the affinity mask's cores, at most a container's quota
    if cap.torch_threads > usable:
        threads += (f" (more than the {usable} cores this process may use: set OMP_NUM_THREADS to {usable}; "
                    "blurbkit's own runs lower it under a container quota)")
    yield Check("machine", "threads", "note", threads)
    yield Check("machine", "allocator", "note", cap.allocator
                + ("" if "tuned" in cap.allocator else " (blurbkit tunes glibc malloc itself on its first CPU train/predict)"))
    yield from memory_checks()


def memory_checks(state: Any = None) -> Iterator[Check]:
    """The memory runs may use (the machine's, or a lower container limit) and when the tuned heap
    hands freed memory back (runtime/allocator.py: HeapGuard)."""
    from blurbkit.runtime.allocator import HeapGuard
    from blurbkit.runtime.cgroups import memory_state

    found = memory_state() if state is None else state
    if found is None:
        return
    total, available, _ = found
    guard = HeapGuard()
    yield Check("machine", "memory", "note",
                f"{total / 2**30:.1f} GiB usable, {available / 2**30:.1f} GiB available now; a run gives its freed heap "
                f"back below {guard.min_available:.0%} available or above {guard.max_share:.0%} of it")


def peak_checks(seconds: float, size: int = 2048) -> Iterator[Check]:
    """The matmul peak of each native dtype at this process's threads, and what it means for speed.

    "Native bf16" is not one speed: this project's 2-core AMD EPYC machines (all AVX512-BF16) measured
    bf16 at 2.1-2.3x fp32 on some and 4.2-4.4x on others (README, Serving), and AMX CPUs go further. The
    bf16 inference and training speed-ups over fp32 follow this ratio, since a MiniLM forward pass
    spends most of its time in matmuls."""
    from blurbkit.speed.machine import measure_peaks

    peaks, skipped = measure_peaks(seconds=seconds, size=size)
    shown = ", ".join(f"{name} {value:,.0f}" if value >= 100 else f"{name} {value:.3g}" for name, value in peaks.items())
    yield Check("machine", "matmul peak", "note", f"{shown} GFLOP/s ({size}x{size}, best of {seconds:g} s)")
    if "bf16" in peaks and peaks.get("fp32"):
        ratio = peaks["bf16"] / peaks["fp32"]
        yield Check("machine", "bf16 vs fp32", "note",
                    f"{ratio:.1f}x: bf16 runs (precision auto) gain up to about that over fp32 here")
    for name, why in skipped.items():
        yield Check("machine", f"{name} peak", "note", f"not timed: {why}")
