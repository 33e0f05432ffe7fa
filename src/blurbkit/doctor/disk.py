"""Free, writable disk where runs and the cache go."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from blurbkit.doctor.check import Check

MIN_FREE_BYTES = 1 << 30  # runs/ (no saved models with --quick) and the prepared/encoded cache stay well below


def _existing(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_checks(runs_dir: Path) -> Iterator[Check]:
    from blurbkit.paths import cache_root

    cache = cache_root()
    for name, path, fix in (
        ("runs", runs_dir, "free space there or pass --runs-dir DIR on another disk"),
        ("cache", cache, "free space there or set BLURBKIT_CACHE=DIR on another disk"),
    ):
        where = _existing(path)
        if not where.is_dir():  # a file where the folder should be: every run would be refused there
            yield Check("disk", name, "problem", f"{path}: {where} is a file, not a folder", fix)
            continue
        if not os.access(where, os.W_OK):
            yield Check("disk", name, "problem", f"{path}: {where} is not writable", fix)
            continue
        free = shutil.disk_usage(where).free
        detail = f"{path} ({free / 2**30:.1f} GiB free)"
        yield Check("disk", name, "ok" if free >= MIN_FREE_BYTES else "problem",
                    detail if free >= MIN_FREE_BYTES else f"{detail}: the main job needs about 1 GiB", fix)
