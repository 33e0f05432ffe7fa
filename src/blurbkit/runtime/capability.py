"""What this machine runs fast: the one place that looks at the hardware.

Everything that picks a dtype or times a matmul asks here: runtime/precision.py (autocast),
speed/machine.py (which matmul peaks are measured), `blurbkit doctor` (the report).

Native matmul dtypes: fp32 always; bf16 on a CPU with AVX512-BF16 or AMX-BF16 (x86) or the
ARMv8.6 BF16 extension ("bf16"/"svebf16" in /proc/cpuinfo Features), or on a CUDA GPU that
supports it; fp16 on CUDA. A CPU without them still *computes* in bf16, emulated, which is slow
beyond use: one 2048^2 bf16 matmul took 58 s on an AVX2-only EPYC (about 0.3 s in fp32).

Override: ``BLURBKIT_CPU_DTYPES`` (comma-separated, e.g. ``fp32``) restricts the CPU to those of
its native dtypes; ``BLURBKIT_CPU_DTYPES=fp32`` pretends the CPU lacks bf16, for tests and for
measuring the fp32 path on a bf16 machine. It can only take dtypes away, never add an emulated one.
The override is read at every call (the hardware probe itself is cached once per value).

ISA limits: ``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``) caps the instructions
oneDNN, which runs torch's CPU bf16 matmuls, may use. Below AVX512_CORE_BF16 (e.g. ``AVX2``) a bf16
matmul is emulated even on a CPU whose flags list avx512_bf16, so bf16 is not native then. With
``ATEN_CPU_CAPABILITY=avx2`` and ``MKL_ENABLE_INSTRUCTIONS=AVX2`` as well, a newer x86 CPU runs the
kernels an AVX2-only one runs (docs/speed_fp32.md measures that way); blurbkit reads only the
oneDNN limit, the other two change speed, not which dtype is native.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.runtime.cgroups import cgroup_cpu_limit

ENV_CPU_DTYPES = "BLURBKIT_CPU_DTYPES"
DTYPES = ("fp32", "bf16", "fp16")
X86_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
ARM_FLAGS = ("asimd", "asimdhp", "bf16", "i8mm", "sve", "sve2", "svebf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "svebf16")
ENV_ONEDNN_ISA = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # the first one set wins, as in oneDNN
# oneDNN ISA names (x86) with native bf16 dot products; anything else (SSE41, AVX, AVX2, AVX2_VNNI,
# AVX512_CORE, AVX512_CORE_VNNI ...) emulates them. ALL/DEFAULT mean no limit.
ONEDNN_BF16_ISAS = frozenset({"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512",
                              "AVX10_2_512_AMX_2", "ALL", "DEFAULT"})


@dataclass(frozen=True)
class CpuInfo:
    model: str = "unknown"
    flags: frozenset[str] = frozenset()  # every flag (x86 "flags") or feature (ARM "Features")
    logical: int | None = None  # processor entries
    physical_cores: int | None = None  # distinct (physical id, core id) pairs, where listed
    core_of: tuple[tuple[int, str, str], ...] = ()  # (processor, physical id, core id) of each listed CPU


def parse_cpuinfo(text: str) -> CpuInfo:
    """The model name, flags and core counts in a /proc/cpuinfo text (x86 or ARM)."""
    model, flags, logical, cores = None, set(), 0, set()
    physical, processor, core_of = "", -1, []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            logical += 1
            processor = int(value) if value.isdigit() else -1
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = value
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
            core_of.append((processor, physical, value))
    return CpuInfo(model or "unknown", frozenset(flags), logical or None, len(cores) or None, tuple(core_of))


def _read_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


@dataclass(frozen=True)
class Capability:
    device: str  # "cuda" or "cpu": where blurbkit's engine runs
    cpu: CpuInfo
    native_dtypes: tuple[str, ...]  # of the device, fastest-first order is not implied
    not_native: dict[str, str] = field(default_factory=dict)  # dtype -> why it is not used / measured
    gpu: str | None = None
    override: str | None = None  # the BLURBKIT_CPU_DTYPES value in effect
    isa_limit: str | None = None  # "ONEDNN_MAX_CPU_ISA=AVX2" when oneDNN's instructions are capped
    cpu_dtypes: tuple[str, ...] = ("fp32",)  # native on the CPU itself (= native_dtypes on a CPU-only machine)

    def native(self, dtype: Any) -> bool:
        """True when `dtype` (torch dtype or "fp32"/"bf16"/"fp16") runs natively on the device."""
        return dtype_name(dtype) in self.native_dtypes

    @property
    def bf16(self) -> bool:
        return "bf16" in self.native_dtypes

    @property
    def relevant_flags(self) -> list[str]:
        """The CPU flags that matter for matmul speed (present ones, in a fixed order)."""
        return [flag for flag in X86_FLAGS + ARM_FLAGS if flag in self.cpu.flags]

    @property
    def torch_threads(self) -> int:
        import torch

        return torch.get_num_threads()

    @property
    def allocator(self) -> str:
        """The C library and how blurbkit's allocator tuning stands in this process (runtime/allocator.py)."""
        from blurbkit.runtime.allocator import allocator_state

        lib, version = platform.libc_ver()
        libc = f"{lib} {version}" if lib else "not glibc (left alone)"
        return f"{libc}; {allocator_state()}"

    def report(self) -> dict[str, Any]:
        """JSON-ready summary (benchmark reports, `blurbkit doctor`)."""
        info: dict[str, Any] = {
            "device": self.device, "cpu": self.cpu.model, "cpu_flags": self.relevant_flags,
            "native_dtypes": list(self.native_dtypes), "not_native": dict(self.not_native),
            "physical_cores": self.cpu.physical_cores, "logical_cpus": logical_cpus(self.cpu),
            "usable_cores": usable_cores(self.cpu),
            "torch_threads": self.torch_threads, "allocator": self.allocator,
        }
        if self.gpu:
            info["gpu"] = self.gpu
        if self.override:
            info["override"] = f"{ENV_CPU_DTYPES}={self.override}"
        if self.isa_limit:
            info["isa_limit"] = self.isa_limit
        return info


def dtype_name(dtype: Any) -> str:
    """"fp32"/"bf16"/"fp16" for a torch dtype or one of those names (also "bfloat16", "float32"...)."""
    name = str(dtype).replace("torch.", "")
    return {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}.get(name, name)


def logical_cpus(cpu: CpuInfo) -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or cpu.logical


def _allowed_cpus() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def usable_cores(cpu: CpuInfo, allowed: set[int] | None = None, quota: float | None = None) -> int:
    """Physical cores this process may run on: those of the CPUs in its affinity mask (`taskset`,
    a container's cpuset), at most its cgroup quota. /proc/cpuinfo alone lists every core of the
    host, so a container given 2 CPUs of a 64-core machine would otherwise size pools for 32.
    `allowed` and `quota` default to this process's (given: for tests)."""
    allowed = _allowed_cpus() if allowed is None else allowed
    quota = cgroup_cpu_limit() if quota is None else quota
    if allowed and cpu.core_of:
        count = len({(physical, core) for processor, physical, core in cpu.core_of if processor in allowed}) or len(allowed)
    elif allowed:
        count = min(len(allowed), cpu.physical_cores or len(allowed))
    else:
        count = cpu.physical_cores or cpu.logical or os.cpu_count() or 1
    if quota:
        count = min(count, int(quota))
    return max(1, count)


def cap_torch_threads() -> int | None:
    """Under a cgroup CPU quota (`docker --cpus 2` on a 64-core host), torch still starts one thread
    per CPU of the affinity mask, and the quota throttles them all: oversubscribed, a fine-tuning
    test ran 3x slower here (16 threads on 2 cores). Lower torch's threads to the quota, unless
    OMP_NUM_THREADS chose them. Returns the new count, or None when nothing changed."""
    import torch

    quota = cgroup_cpu_limit()
    if not quota or "OMP_NUM_THREADS" in os.environ:
        return None
    cap = max(1, int(quota))
    if torch.get_num_threads() <= cap:
        return None
    torch.set_num_threads(cap)
    return cap


def capped_threads() -> int:
    """The thread count torch should run with here: its own, lowered to a container's CPU quota
    (see cap_torch_threads) unless OMP_NUM_THREADS chose it. Sets nothing."""
    import torch

    count = torch.get_num_threads()
    quota = cgroup_cpu_limit()
    if quota and "OMP_NUM_THREADS" not in os.environ:
        count = min(count, max(1, int(quota)))
    return count


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """torch's intra-op threads at `count` (None: capped_threads()) inside the block, and the
    caller's own count again after it: a library call must not change a process-wide setting
    (a Predictor with threads=1 left the user's whole program on one thread)."""
    import torch

    before = torch.get_num_threads()
    wanted = count or capped_threads()
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def parse_override(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    wanted = {dtype_name(part.strip().lower()) for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(DTYPES))
    if unknown:
        raise BlurbkitError(f"${ENV_CPU_DTYPES}: unknown dtype(s) {', '.join(unknown)} (use a list of {', '.join(DTYPES)}, e.g. fp32)")
    return wanted | {"fp32"}


def isa_limit(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, value) of the oneDNN ISA cap in effect, or None."""
    for name in ENV_ONEDNN_ISA:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def cpu_capability(cpu: CpuInfo, override: str | None = None, isa: tuple[str, str] | None = None) -> Capability:
    """The CPU's native dtypes from its flags, restricted by an ISA limit (oneDNN's, x86 only)
    and an override (see the module doc)."""
    native, not_native = ["fp32"], {}
    bf16_flags = [flag for flag in CPU_BF16_FLAGS if flag in cpu.flags]
    x86 = "avx2" in cpu.flags or "avx512f" in cpu.flags or "sse4_2" in cpu.flags
    if bf16_flags and isa and x86 and isa[1].upper() not in ONEDNN_BF16_ISAS:
        not_native["bf16"] = (f"{isa[0]}={isa[1]} keeps oneDNN below AVX512_CORE_BF16: bf16 matmuls are emulated "
                              "there (measured on an EPYC: 2.3 vs 75 GFLOP/s in fp32) although the CPU has them")
    elif bf16_flags:
        native.append("bf16")
    else:
        not_native["bf16"] = "no native bf16 matmul on this CPU (no avx512_bf16/amx_bf16; ARM: no bf16); emulated it is ~100x slower than fp32"
    not_native["fp16"] = "fp16 autocast is for GPUs; blurbkit runs fp32 or bf16 on a CPU"
    allowed = parse_override(override)
    if allowed is not None:
        for dtype in [d for d in native if d not in allowed]:
            native.remove(dtype)
            not_native[dtype] = f"disabled by {ENV_CPU_DTYPES}={override}"
    return Capability("cpu", cpu, tuple(native), not_native, override=override or None, cpu_dtypes=tuple(native),
                      isa_limit=f"{isa[0]}={isa[1]}" if isa else None)


def detect(cpuinfo: str | None = None, env: Mapping[str, str] | None = None, cuda: bool | None = None) -> Capability:
    """Probe the machine (or the given /proc/cpuinfo text, environment and CUDA answer: for tests)."""
    env = os.environ if env is None else env
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    cpu = parse_cpuinfo(text) if text else _cpu_from_torch()
    on_cpu = cpu_capability(cpu, env.get(ENV_CPU_DTYPES), isa_limit(env))
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        return on_cpu
    import torch

    native, not_native = ["fp32", "fp16"], {}
    if torch.cuda.is_bf16_supported():
        native.append("bf16")
    else:
        not_native["bf16"] = "this GPU does not support bf16"
    return Capability("cuda", cpu, tuple(native), not_native, gpu=torch.cuda.get_device_name(),
                      override=on_cpu.override, cpu_dtypes=on_cpu.cpu_dtypes)


def _cpu_from_torch() -> CpuInfo:
    """No /proc/cpuinfo (macOS, Windows): the bf16 flags torch itself reports."""
    flags = set()
    try:
        import torch

        if torch.cpu._is_avx512_bf16_supported():
            flags.add("avx512_bf16")
        if torch.cpu._is_amx_tile_supported():
            flags.update(("amx_tile", "amx_bf16"))  # every AMX CPU so far has AMX-BF16 with the tiles
        if torch.cpu._is_avx2_supported():
            flags.add("avx2")
    except (AttributeError, RuntimeError):
        pass
    return CpuInfo(platform.processor() or "unknown", frozenset(flags), os.cpu_count(), None)


@cache
def _cached(override: str | None, isa: tuple[str, str] | None = None) -> Capability:
    env = {ENV_CPU_DTYPES: override} if override is not None else {}
    return detect(env=env | (dict([isa]) if isa else {}))


def capability() -> Capability:
    """This machine's capability, probed once per process (and per override and ISA-limit value)."""
    return _cached(os.environ.get(ENV_CPU_DTYPES), isa_limit(os.environ))
