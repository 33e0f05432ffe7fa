"""The dataset and task-type registry: every dataset fact lives in datasets.toml, not in code.

A user adds a dataset with one small TOML file in the user registry folder
(``$BLURBKIT_HOME/datasets/NAME.toml``, default ``~/.blurbkit/datasets``) or with
``blurbkit datasets add``; it then works everywhere a built-in dataset does.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import read_lines
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
    # split -> why its distributed count differs from `published` (the dataset's SOURCE.md says more)
    count_notes: dict[str, str] = field(default_factory=dict)
    in_blurb: bool = True
    original_text: bool = False  # records keep the unmasked sentence and entity offsets (relation inputs)
    source: Path | None = None  # set for user datasets: where their raw files live
    origin: str | None = None  # the TOML file it was read from, for messages

    @property
    def task(self) -> TaskType:
        """The task type part (tasks/types/): everything that depends on the kind of task."""
        from blurbkit.tasks.types import get_task_type

        return get_task_type(self.task_type)

    @property
    def metric(self) -> str:
        return self.task.metric


TOML_KINDS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
              dict: "a table"}


def _field(name: str, table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, origin: str) -> Any:
    """table[key] (or `default`), checked to be of `kind`: a wrong type is one line, not a traceback."""
    value = table.get(key, default)
    bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    if value is not default and (bad_bool or not isinstance(value, kind)):
        names = " or ".join(TOML_KINDS.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise BlurbkitError(f"dataset {name!r}: {key} must be {names}, not {value!r}", path=origin)
    return value


def _strings(name: str, table: dict[str, Any], key: str, origin: str) -> tuple[str, ...]:
    values = _field(name, table, key, list, [], origin)
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise BlurbkitError(f"dataset {name!r}: {key} must be a list of names, not {values!r}", path=origin)
    return tuple(str(v) for v in values)


def _positive(name: str, table: dict[str, Any], key: str, default: int, origin: str) -> int:
    value = _field(name, table, key, int, default, origin)
    if value < 1:
        raise BlurbkitError(f"dataset {name!r}: {key} must be at least 1, not {value}", path=origin)
    return value


def _relative_file(name: str, split: str, file: Any, origin: str) -> str:
    """A split file must stay inside the dataset's source folder: relative, no '..' part."""
    if not isinstance(file, str) or not file.strip():
        raise BlurbkitError(f"dataset {name!r}: files.{split} must be a file name, not {file!r}", path=origin)
    if PurePosixPath(file).is_absolute() or Path(file).is_absolute() or ".." in PurePosixPath(file.replace("\\", "/")).parts:
        raise BlurbkitError(
            f"dataset {name!r}: files.{split} = {file!r} leaves the source folder "
            "(give a path relative to it, without '..')",
            path=origin,
        )
    return file


TABLE_FIELDS = ("task_type", "reader", "files", "recipe", "published", "count_notes", "source", "negative_label", "title",
                "max_length", "unit", "seeds", "labels", "entity_types", "in_blurb", "original_text")
RECIPE_FIELDS = ("lr", "batch_size", "epochs")


def _spec_from_table(name: str, table: dict[str, Any], origin: str) -> DatasetSpec:
    from blurbkit.tasks.types import TASK_TYPES

    for key in ("task_type", "reader", "files"):
        if key not in table:
            raise BlurbkitError(f"dataset {name!r} lacks the field {key!r}", path=origin)
    # A misspelt field (seed = 10, recipe.batch) would silently become its default: refused.
    for where, given, known in (("", table, TABLE_FIELDS), ("recipe.", table.get("recipe") or {}, RECIPE_FIELDS)):
        unknown = sorted(set(given) - set(known)) if isinstance(given, dict) else []
        if unknown:
            raise BlurbkitError(f"dataset {name!r}: unknown field(s) {', '.join(where + u for u in unknown)} "
                                f"(known: {', '.join(where + k for k in known)})", path=origin)
    task_type = _field(name, table, "task_type", str, None, origin)
    if task_type not in TASK_TYPES:
        known = ", ".join(TASK_TYPES.names())
        raise BlurbkitError(f"dataset {name!r}: unknown task_type {task_type!r} (one of {known})", path=origin)
    reader = _field(name, table, "reader", str, None, origin)
    files = _field(name, table, "files", dict, None, origin)
    recipe = _field(name, table, "recipe", dict, {}, origin)
    lr = _field(name, recipe, "lr", (int, float), 5e-5, origin)
    if isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise BlurbkitError(f"dataset {name!r}: recipe.lr must be a positive number, not {lr!r}", path=origin)
    published = _field(name, table, "published", dict, {}, origin)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in published.values()):
        raise BlurbkitError(f"dataset {name!r}: published counts must be whole numbers, not {published!r}", path=origin)
    count_notes = _field(name, table, "count_notes", dict, {}, origin)
    if not all(isinstance(v, str) for v in count_notes.values()):
        raise BlurbkitError(f"dataset {name!r}: count_notes must map a split to a sentence, not {count_notes!r}", path=origin)
    source = _field(name, table, "source", str, None, origin)
    negative = _field(name, table, "negative_label", (str, int), None, origin)
    return DatasetSpec(
        name=name,
        title=_field(name, table, "title", str, name, origin),
        task_type=task_type,
        reader=reader,
        files={split: _relative_file(name, split, file, origin) for split, file in files.items()},
        max_length=_positive(name, table, "max_length", 256, origin),
        unit=_field(name, table, "unit", str, "instances", origin),
        recipe=Recipe(
            lr=float(lr),
            batch_size=_positive(name, recipe, "batch_size", 32, origin),
            epochs=_positive(name, recipe, "epochs", 3, origin),
        ),
        seeds=_positive(name, table, "seeds", 5, origin),
        labels=_strings(name, table, "labels", origin),
        negative_label=None if negative is None else str(negative),
        entity_types=_strings(name, table, "entity_types", origin),
        published=dict(published),
        count_notes=dict(count_notes),
        in_blurb=_field(name, table, "in_blurb", bool, True, origin),
        original_text=_field(name, table, "original_text", bool, False, origin),
        source=_source(name, source, origin),
        origin=origin,
    )


def _source(name: str, source: str | None, origin: str) -> Path | None:
    if source is None:
        return None
    try:
        return Path(source).expanduser()
    except RuntimeError:  # "~nosuchuser/..."
        raise BlurbkitError(f"dataset {name!r}: source {source!r} names an unknown home directory", path=origin) from None


def _load_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BlurbkitError(f"not valid TOML ({err})", path=origin) from None


def user_registry_dir() -> Path:
    return blurbkit_home() / "datasets"


BUILTIN_ORIGIN = "datasets.toml"  # the packaged registry; a user dataset's origin is its own TOML file


@functools.lru_cache(maxsize=1)
def _builtin_specs() -> tuple[tuple[str, DatasetSpec], ...]:
    # The packaged file never changes in a process: parsed once (reports look datasets up thousands of times).
    text = resources.files("blurbkit.tasks").joinpath("datasets.toml").read_text("utf-8")
    return tuple((name, _spec_from_table(name, table, BUILTIN_ORIGIN))
                 for name, table in _load_toml(text, BUILTIN_ORIGIN).items())


def builtin_datasets() -> dict[str, DatasetSpec]:
    return dict(_builtin_specs())


def user_datasets() -> dict[str, DatasetSpec]:
    specs = {}
    folder = user_registry_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            table = _load_toml("\n".join(read_lines(path)), str(path))
            specs[path.stem] = _spec_from_table(path.stem, table, str(path))
    return specs


def all_datasets() -> dict[str, DatasetSpec]:
    specs = builtin_datasets()
    for name, spec in user_datasets().items():
        if name in specs:
            raise BlurbkitError(f"user dataset {name!r} shadows a built-in dataset; rename it", path=user_registry_dir())
        specs[name] = spec
    return specs


def dataset_named(key: str, specs: dict[str, DatasetSpec]) -> str | None:
    """The name of the dataset in `specs` that `key` names by its name or its title (``bc5chem``,
    ``BC5-chem``), case and surrounding spaces aside; None if none does."""
    wanted = key.strip().lower()
    return next((name for name, spec in specs.items() if wanted in (name.lower(), spec.title.lower())), None)


def get_dataset(name: str) -> DatasetSpec:
    specs = all_datasets()
    if not isinstance(name, str) or name not in specs:
        # A title (BC5-chem, GAD) is what tables show; commands and stores key on the name.
        meant = dataset_named(name, specs) if isinstance(name, str) else None
        hint = f"did you mean {meant!r}? " if meant else ""
        raise BlurbkitError(f"unknown dataset {name!r} ({hint}known: {', '.join(specs)})")
    return specs[name]


def blurb_datasets() -> list[DatasetSpec]:
    return [spec for spec in builtin_datasets().values() if spec.in_blurb]


def original_text_datasets() -> list[str]:
    """Datasets whose records keep the unmasked sentence (what the markers / original relation inputs need)."""
    return [name for name, spec in all_datasets().items() if spec.original_text]
