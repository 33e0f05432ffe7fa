"""The reader registry: one function a source format, chosen by a dataset's ``reader`` field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blurbkit.data.schema import SplitData
from blurbkit.registry import Registry
from blurbkit.tasks.registry import DatasetSpec


@dataclass(frozen=True)
class ReadOptions:
    """Options that change what a reader produces; each one is recorded in the manifest."""

    pico_train_from_dev: int | None = None  # carve N dev abstracts into train when train is absent
    fold: int = 0  # AIMed: which of the 10 folds is the test split


Reader = Callable[[DatasetSpec, Path, str, ReadOptions], SplitData]
READERS: Registry[Reader] = Registry("reader")
