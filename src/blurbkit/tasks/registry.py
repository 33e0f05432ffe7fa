"""The dataset and task-type registry: every dataset fact lives in datasets.toml, not in code.

A user adds a dataset with one small TOML file in the user registry folder
(``$BLURBKIT_HOME/datasets/NAME.toml``, default ``~/.blurbkit/datasets``) or with
``blurbkit datasets add``; it then works everywhere a built-in dataset does.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.paths import blurbkit_home

if TYPE_CHECKING:
    from blurbkit.tasks.types.base import TaskType

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Recipe:
    lr: float
    batch_size: int
    epochs: int


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    task_type: str
    reader: str
    files: dict[str, str]
    max_length: int
    unit: str
    recipe: Recipe
    seeds: int
    labels: tuple[str, ...] = ()
    negative_label: str | None = None
    entity_types: tuple[str, ...] = ()
    published: dict[str, int] = field(default_factory=dict)
    in_blurb: bool = True
    original_text: bool = False  # records keep the unmasked sentence and entity offsets (relation inputs)
    source: Path | None = None  # set for user datasets: where their raw files live

    @property
    def task(self) -> TaskType:
        """The task type part (tasks/types/): everything that depends on the kind of task."""
        from blurbkit.tasks.types import get_task_type

        return get_task_type(self.task_type)

    @property
    def metric(self) -> str:
        return self.task.metric


def _spec_from_table(name: str, table: dict[str, Any], origin: str) -> DatasetSpec:
    try:
        from blurbkit.tasks.types import TASK_TYPES

        task_type = table["task_type"]
        if task_type not in TASK_TYPES:
            known = ", ".join(TASK_TYPES.names())
            raise BlurbkitError(f"dataset {name!r}: unknown task_type {task_type!r} (one of {known})", path=origin)
        recipe = table.get("recipe", {})
        return DatasetSpec(
            name=name,
            title=table.get("title", name),
            task_type=task_type,
            reader=table["reader"],
            files=dict(table["files"]),
            max_length=int(table.get("max_length", 256)),
            unit=table.get("unit", "instances"),
            recipe=Recipe(
                lr=float(recipe.get("lr", 5e-5)),
                batch_size=int(recipe.get("batch_size", 32)),
                epochs=int(recipe.get("epochs", 3)),
            ),
            seeds=int(table.get("seeds", 5)),
            labels=tuple(str(label) for label in table.get("labels", ())),
            negative_label=table.get("negative_label"),
            entity_types=tuple(table.get("entity_types", ())),
            published={k: int(v) for k, v in table.get("published", {}).items()},
            in_blurb=bool(table.get("in_blurb", True)),
            original_text=bool(table.get("original_text", False)),
            source=Path(table["source"]).expanduser() if "source" in table else None,
        )
    except KeyError as err:
        raise BlurbkitError(f"dataset {name!r} lacks the field {err.args[0]!r}", path=origin) from None


def _load_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BlurbkitError(f"not valid TOML ({err})", path=origin) from None


def user_registry_dir() -> Path:
    return blurbkit_home() / "datasets"


def builtin_datasets() -> dict[str, DatasetSpec]:
    text = resources.files("blurbkit.tasks").joinpath("datasets.toml").read_text("utf-8")
    return {name: _spec_from_table(name, table, "datasets.toml") for name, table in _load_toml(text, "datasets.toml").items()}


def user_datasets() -> dict[str, DatasetSpec]:
    specs = {}
    folder = user_registry_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            table = _load_toml(path.read_text("utf-8"), str(path))
            specs[path.stem] = _spec_from_table(path.stem, table, str(path))
    return specs


def all_datasets() -> dict[str, DatasetSpec]:
    specs = builtin_datasets()
    for name, spec in user_datasets().items():
        if name in specs:
            raise BlurbkitError(f"user dataset {name!r} shadows a built-in dataset; rename it", path=user_registry_dir())
        specs[name] = spec
    return specs


def get_dataset(name: str) -> DatasetSpec:
    specs = all_datasets()
    if name not in specs:
        raise BlurbkitError(f"unknown dataset {name!r} (known: {', '.join(specs)})")
    return specs[name]


def blurb_datasets() -> list[DatasetSpec]:
    return [spec for spec in builtin_datasets().values() if spec.in_blurb]


def original_text_datasets() -> list[str]:
    """Datasets whose records keep the unmasked sentence (what the markers / original relation inputs need)."""
    return [name for name, spec in all_datasets().items() if spec.original_text]
