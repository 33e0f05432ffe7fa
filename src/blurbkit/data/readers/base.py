"""The reader registry: one function a source format, chosen by a dataset's ``reader`` field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from blurbkit.data.schema import SplitData
from blurbkit.registry import Registry
from blurbkit.tasks.registry import DatasetSpec


@dataclass(frozen=True)
class ReadOptions:
    """Options that change what a reader produces; each one is recorded in the manifest of the
    datasets whose reader is named in its ``readers`` metadata (a new option: one field here)."""

    # carve N dev abstracts into train when train is absent
    pico_train_from_dev: int | None = field(default=None, metadata={"readers": ("pico",)})
    fold: int = field(default=0, metadata={"readers": ("aimed",)})  # AIMed: which of the 10 folds is the test split

    def for_reader(self, reader: str) -> dict[str, object]:
        """The options `reader` honours, by name (the others cannot change its records)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if reader in f.metadata["readers"]}


Reader = Callable[[DatasetSpec, Path, str, ReadOptions], SplitData]
READERS: Registry[Reader] = Registry("reader")
