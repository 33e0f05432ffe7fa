"""Where blurbkit keeps its own files: $BLURBKIT_HOME (default ~/.blurbkit) holds the user dataset
registry and the caches; $BLURBKIT_CACHE moves the caches alone."""

from __future__ import annotations

import os
from pathlib import Path


def blurbkit_home() -> Path:
    return Path(os.environ.get("BLURBKIT_HOME", "~/.blurbkit")).expanduser()


def cache_root() -> Path:
    return Path(os.environ.get("BLURBKIT_CACHE", blurbkit_home() / "cache")).expanduser()
