"""Checks for values handed to the Python API, as `cli/argtypes.py` checks flags: a value of the
wrong kind is one BlurbkitError naming the argument, instead of a TypeError deep inside, a string
iterated letter by letter, or "false" read as true."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError

# Annotation names (dataclass fields are strings under `from __future__ import annotations`) -> the
# Python kinds a value may have, and how an error says it.
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a string"),
    "Path": ((str, os.PathLike), "a path"),
    "None": ((type(None),), "None"),
}


# How a JSON value's kind is named in an error about a record or document field.
JSON_KINDS: dict[type, str] = {str: "a string", list: "a list", int: "a number", float: "a number", dict: "an object"}


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return JSON_KINDS.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(instance: Any) -> None:
    """Every field of a dataclass holds a value of its annotated kind (bool is never a number)."""
    for spec in fields(instance):
        annotation = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", "")
        names = [part.strip().split("[")[0] for part in annotation.split("|")]
        if not all(name in _KINDS for name in names):
            continue  # dict[...] and other containers are checked by their owners
        value = getattr(instance, spec.name)
        allowed = tuple(kind for name in names for kind in _KINDS[name][0])
        if isinstance(value, bool) and "bool" not in names or not isinstance(value, allowed):
            wanted = " or ".join(_KINDS[name][1] for name in names)
            raise BlurbkitError(f"{spec.name} must be {wanted}, not {_short(value)}")


def items_of(value: Any, name: str = "inputs") -> list[Any]:
    """A list of items (texts, documents, records): never one string, dict or None taken as the list."""
    if isinstance(value, (str, bytes)):
        raise BlurbkitError(f"{name}: expected a list, not one {type(value).__name__} (wrap a single text: [text])")
    if value is None or isinstance(value, dict) or not isinstance(value, Iterable):
        raise BlurbkitError(f"{name}: expected a list, not {_short(value)}")
    return list(value)


def paths_of(value: Any, name: str) -> list[Path]:
    """One model directory or a list of them; None is none."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    items = items_of(value, name)
    wrong = [item for item in items if not isinstance(item, (str, os.PathLike))]
    if wrong:
        raise BlurbkitError(f"{name}: expected directory paths, not {_short(wrong[0])}")
    return [Path(item) for item in items]
