"""One exception type for every user-facing failure.

The CLI turns a BlurbkitError into a single line on stderr and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class BlurbkitError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
