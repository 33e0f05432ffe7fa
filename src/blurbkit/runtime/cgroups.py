"""What a container allows this process: its cgroup's CPU quota and memory limit (v2, or v1's cpu
and memory controllers). /proc/cpuinfo and /proc/meminfo show the whole host; only the cgroup tells
that `docker --cpus 2 --memory 8g` gave this process 2 CPUs and 8 GB of a 64-core, 512 GB machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def _cgroup_quota(folder: Path, v2: bool) -> float | None:
    try:
        if v2:  # "max 100000" or "200000 100000"
            quota, _, period = (folder / "cpu.max").read_text().partition(" ")
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((folder / "cpu.cfs_quota_us").read_text())  # -1: no quota
        return None if quota_us <= 0 else quota_us / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _cgroup_folders(controller: str, root: Path, self_cgroup: str | None) -> Iterator[tuple[Path, bool]]:
    """(folder, is v2) from this process's cgroup up to the root of its hierarchy, for `controller`
    ("cpu", "memory") under cgroup v1, or the unified v2 hierarchy."""
    if self_cgroup is None:
        try:
            self_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return
    for line in self_cgroup.splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        v2 = controllers == ""
        if not path or not (v2 or controller in controllers.split(",")):
            continue
        # v1: "cpu" is often a link to "cpu,cpuacct"
        mounts = [] if v2 else [root / controller, root / controllers]
        base = next((mount for mount in mounts if mount.is_dir()), root)
        folder = base / path.lstrip("/")
        for step in (folder, *folder.parents):
            yield step, v2
            if step == base:
                break


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), self_cgroup: str | None = None) -> float | None:
    """The CPUs a cgroup quota allows this process (`docker --cpus`, a Kubernetes CPU limit), or None.
    Such a limit leaves /proc/cpuinfo and the affinity mask as they are: only the quota tells. The
    smallest quota on the way from the process's cgroup up to the root counts (v2, or v1's cpu)."""
    found = [limit for folder, v2 in _cgroup_folders("cpu", root, self_cgroup) if (limit := _cgroup_quota(folder, v2))]
    return min(found) if found else None


def _cgroup_memory(folder: Path, v2: bool) -> int | None:
    try:  # v2: "max" = none; v1: no limit is a huge number (above any machine's memory, dropped later)
        value = (folder / ("memory.max" if v2 else "memory.limit_in_bytes")).read_text().strip()
        return None if value == "max" else int(value)
    except (OSError, ValueError):
        return None


def memory_state(meminfo: Path = Path("/proc/meminfo"), statm: Path = Path("/proc/self/statm"),
                 root: Path = Path("/sys/fs/cgroup"), self_cgroup: str | None = None) -> tuple[int, int, int] | None:
    """(memory this process may use, of it still available, this process's resident bytes), or None
    where /proc is not there. The limit is the machine's memory or, under a cgroup memory limit
    (`docker --memory`, a Kubernetes limit; the smallest from the process's cgroup up, v2 or v1), that
    limit if lower; what is available under it then counts this process's resident memory only."""
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        total, available = (int(fields[key].split()[0]) * 1024 for key in ("MemTotal", "MemAvailable"))
        resident = int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, KeyError, ValueError, IndexError):
        return None
    limits = [limit for folder, v2 in _cgroup_folders("memory", root, self_cgroup)
              if (limit := _cgroup_memory(folder, v2)) is not None]
    if limits and min(limits) < total:
        total = min(limits)
        available = min(available, max(total - resident, 0))
    return total, available, resident
