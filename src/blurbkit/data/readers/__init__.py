"""Raw readers, one module per source format, registered by name in ``READERS`` (base.py).

Importing this package imports every reader module so that ``READERS`` is complete; use
``read_split`` as the one entry point. The helpers below are shared by the reader modules; they
are defined before the modules are imported (at the bottom) because the modules import them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import parse_jsonl, read_lines
from blurbkit.tasks.registry import SPLITS, DatasetSpec
from blurbkit.tasks.types.relation import placeholder_spans

READER_MODULES = ("conll", "pico", "chemprot", "gad", "biosses", "hoc", "pubmedqa", "bioasq", "aimed")
# Written separately (DDI 2013 XML converter): if it is absent or fails to import, the other readers
# still work and reading DDI raises SplitUnavailable saying why.
OPTIONAL_READER_MODULES = {"ddi": "the DDI reader (blurbkit.data.readers.ddi)"}


class SplitUnavailable(BlurbkitError):
    """The split is not in the distribution (e.g. EBM PICO train): `prepare` records it as missing
    instead of failing; anything else a reader raises is bad input and stops `prepare`."""


def read_split(
    spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions | None = None
) -> SplitData:
    """Read one split of `spec` from its raw folder into canonical records."""
    if split not in SPLITS:
        raise BlurbkitError(f"dataset {spec.name!r} has no split {split!r} (train, dev, test)")
    check_reader(spec)
    if not source_dir.is_dir():
        raise BlurbkitError(f"dataset {spec.name!r}: source folder not found", path=source_dir)
    return READERS.get(spec.reader)(spec, source_dir, split, options or ReadOptions())


def check_reader(spec: DatasetSpec) -> None:
    """The dataset's reader exists and holds data of its task type (each task type lists its formats)."""
    from blurbkit.tasks.types import TASK_TYPES

    if spec.reader not in READERS:
        raise BlurbkitError(f"dataset {spec.name!r}: unknown reader {spec.reader!r} (one of {', '.join(READERS.names())})",
                            path=spec.origin)
    owners = [t for t in TASK_TYPES.names() if spec.reader in TASK_TYPES.get(t).file_formats]
    if owners and spec.task.name not in owners:
        raise BlurbkitError(f"dataset {spec.name!r}: reader {spec.reader!r} holds {owners[0]} data, not {spec.task_type}",
                            path=spec.origin)


def split_file(spec: DatasetSpec, source_dir: Path, split: str) -> Path:
    if split not in spec.files:
        raise BlurbkitError(
            f"dataset {spec.name!r} lists no file for split {split!r} (files: {spec.files})", path=spec.origin
        )
    return source_dir / spec.files[split]


def tsv_rows(
    path: Path, columns: int, header: tuple[str, ...] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a tab-separated file; blank lines skipped, column count checked.

    ``header``: the expected first line (checked, not returned), for files distributed with one.
    """
    lines = read_lines(path)
    start = 0
    if header is not None:
        if lines[0].split("\t") != list(header):
            raise BlurbkitError(
                f"expected the header {'<TAB>'.join(header)!r}, found {lines[0][:80]!r}", path=path, line=1
            )
        start = 1
    found = False
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != columns:
            raise BlurbkitError(
                f"expected {columns} tab-separated columns, found {len(fields)}", path=path, line=number
            )
        found = True
        yield number, fields
    if not found:
        raise BlurbkitError("no data rows", path=path)


def jsonl_rows(path: Path, keys: tuple[str, ...], texts: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSON-lines file; each object must have `keys`, and those of them in
    `texts` must be strings (a number there would pass into the prepared files unnoticed)."""
    found = False
    for number, row in parse_jsonl(read_lines(path), path):
        missing = [key for key in keys if key not in row]
        if missing:
            raise BlurbkitError(f"JSON object lacks {', '.join(map(repr, missing))}", path=path, line=number)
        for key in texts:
            if not isinstance(row[key], str):
                raise BlurbkitError(f"{key!r} is {type(row[key]).__name__}, not a string", path=path, line=number)
        found = True
        yield number, row
    if not found:
        raise BlurbkitError("no data rows", path=path)


def check_label(label: str, spec: DatasetSpec, path: Path, line: int) -> str:
    if spec.labels and label not in spec.labels:
        raise BlurbkitError(
            f"unknown label {label!r} (expected one of {', '.join(spec.labels)})", path=path, line=line
        )
    return label


def placeholder_entities(text: str, spec: DatasetSpec, path: Path, line: int) -> list[dict[str, Any]]:
    """The pair's entities = spans of its type placeholders, in text order.

    One overlapping-mention placeholder (@CHEM-GENE$) stands for both entities, so it yields two
    entities with the same span (the same convention as @DRUG-DRUG$ in DDI): a relation record
    always has exactly two entities, which the featurizers rely on.
    """
    entities = placeholder_spans(text, lambda part: _expand(part, spec))
    for entity in entities:
        if spec.entity_types and entity["type"] not in spec.entity_types:
            raise BlurbkitError(f"placeholder {text[entity['start']:entity['end']]} names entity type {entity['type']!r}, "
                                f"not one of {', '.join(spec.entity_types)}", path=path, line=line)
    if len(entities) != 2:
        raise BlurbkitError(
            f"expected the pair's two entity placeholders (e.g. @GENE$ ... @DISEASE$), found {len(entities)}",
            path=path,
            line=line,
        )
    return entities


def _expand(part: str, spec: DatasetSpec) -> str:
    """BLURB abbreviates the types in an overlap placeholder (@CHEM-GENE$): CHEM -> CHEMICAL."""
    matches = [kind for kind in spec.entity_types if kind.startswith(part)]
    return matches[0] if part not in spec.entity_types and len(matches) == 1 else part


def _unavailable_reader(what: str, reason: str) -> Any:
    def read(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
        raise SplitUnavailable(f"dataset {spec.name!r}: {what} is not installed ({reason})")

    return read


def _import_readers() -> None:
    for name in READER_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    for name, what in OPTIONAL_READER_MODULES.items():
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ImportError as err:
            # Absent (not landed yet) or broken: every other dataset must still work, and using this
            # one says why it cannot be read; prepare records its splits as missing with that reason.
            if name not in READERS:
                READERS.register(name)(_unavailable_reader(what, f"import failed: {err}"))


_import_readers()
