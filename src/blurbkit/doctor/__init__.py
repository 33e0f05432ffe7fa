"""`blurbkit doctor`'s read-only checks: can the main job (`blurbkit benchmark --quick`) run here?

Each section is one module yielding `Check`s: machine.py (hardware, dtypes, threads, allocator,
memory), model.py (the encoder loads), data.py (the 13 BLURB folders, raw or prepared, against the
prepared cache's sha256), disk.py (free space for runs and the cache). A check that breaks becomes
a problem line, never a traceback. The CLI (cli/doctor.py) only prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from blurbkit.doctor.check import Check
from blurbkit.doctor.data import data_checks
from blurbkit.doctor.disk import disk_checks
from blurbkit.doctor.machine import machine_checks, peak_checks
from blurbkit.doctor.model import model_checks

__all__ = ["Check", "run_checks"]


def run_checks(data: Path, model: str | None, runs_dir: Path, peak_seconds: float | None = None) -> list[Check]:
    """Every section's checks, in the order they are printed. peak_seconds: also time the matmul
    peak of each native dtype for that long (a few seconds of full load, so only when asked)."""
    sections: list[tuple[str, Callable[[], Iterator[Check]]]] = [("machine", machine_checks)]
    if peak_seconds:
        sections.append(("machine", lambda: peak_checks(peak_seconds)))
    sections += [("model", lambda: model_checks(model)), ("data", lambda: data_checks(data)),
                 ("disk", lambda: disk_checks(runs_dir))]
    checks: list[Check] = []
    for section, produce in sections:
        checks += _guarded(section, produce)
    return checks


def _guarded(section: str, produce: Callable[[], Iterator[Check]]) -> list[Check]:
    """The section's checks; a check that breaks becomes a problem line, never a traceback."""
    out: list[Check] = []
    try:
        for check in produce():
            out.append(check)
    except Exception as err:  # noqa: BLE001 - doctor reports, it does not crash
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        out.append(Check(section, "check failed", "problem", f"{type(err).__name__}: {message}",
                         "re-run with a clean environment (./setup.sh); report this line if it persists"))
    return out
