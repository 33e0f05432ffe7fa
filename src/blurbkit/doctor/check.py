"""One line of `blurbkit doctor`'s report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    section: str
    name: str
    status: str  # "ok" | "problem" (the main job cannot run) | "warn" (it can, but look) | "note" (information)
    detail: str = ""
    fix: str = ""
