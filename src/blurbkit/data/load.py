"""Load canonical records from a prepared directory, or from raw files prepared on the fly.

``data`` is either a prepared directory (it has manifest.json, from `blurbkit prepare`) or a raw
source folder such as ../shared/data. A raw folder is prepared one dataset at a time into
``$BLURBKIT_CACHE/prepared/<key>`` (default cache: ``$BLURBKIT_HOME/cache``); the key covers the source folder, the size and mtime of
its files, the options that matter to the dataset, the dataset's spec and blurbkit's data code,
so an edited file or option gives a fresh cache entry and an unchanged one is reused.

Default ``data``: $BLURBKIT_DATA, else ../shared/data relative to the current directory.
A user dataset (``source`` in its TOML) needs no ``data`` at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import blurbkit
from blurbkit.data.prepare import MANIFEST, dataset_options, prepare, split_note_lines
from blurbkit.data.readers import SplitUnavailable
from blurbkit.data.readers.base import ReadOptions
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import parse_jsonl, read_json, read_lines
from blurbkit.paths import cache_root
from blurbkit.tasks.registry import SPLITS, DatasetSpec, all_datasets, get_dataset

ENV_DATA = "BLURBKIT_DATA"
DEFAULT_DATA = Path("..") / "shared" / "data"


def default_data() -> Path:
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    raise BlurbkitError(
        f"no data folder: pass --data DIR (a prepared directory or raw files), set ${ENV_DATA}, "
        f"or run from a directory that has {DEFAULT_DATA}"
    )


def resolve_data(data: str | Path | None) -> Path:
    """The data folder to use (prepared or raw), checked to exist."""
    if data is not None and not isinstance(data, str | os.PathLike):
        raise BlurbkitError(f"data must be a folder path or None, not {data!r}")
    path = default_data() if data is None else Path(data).expanduser()
    if not path.is_dir():
        raise BlurbkitError("data folder not found", path=path)
    return path


def is_prepared(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or "datasets" not in manifest:
        raise BlurbkitError("not a blurbkit manifest (no 'datasets')", path=folder / MANIFEST)
    return manifest


def _code_digest() -> str:
    """Hash of the code that makes prepared records, so a cache made by other code is not reused:
    the readers (data/), the task types that fill records in and count them (tasks/types/: entity
    spans of placeholders, manifest counts) and the file reading under both (fileio.py)."""
    package = Path(__file__).parents[1]
    sources = [*Path(__file__).parent.rglob("*.py"), *(package / "tasks" / "types").rglob("*.py"), package / "fileio.py"]
    digest = hashlib.sha256()
    for path in sorted(sources):
        digest.update(str(path.relative_to(package)).encode() + path.read_bytes())
    return digest.hexdigest()


def cache_key(spec: DatasetSpec, source_dir: Path, options: ReadOptions) -> str:
    files = [
        (str(p.relative_to(source_dir)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(source_dir.rglob("*"))
        if p.is_file()
    ]
    spec_table = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()}
    blob = json.dumps(
        {
            "source": str(source_dir.resolve()),
            "files": files,
            "options": dataset_options(spec, options),
            "spec": spec_table,
            "version": blurbkit.__version__,
            "code": _code_digest(),
        },
        sort_keys=True,
        default=str,
    )
    return f"{spec.name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _cached(spec: DatasetSpec, source_dir: Path, options: ReadOptions) -> Path:
    """The cache folder holding `spec` prepared from `source_dir` (prepared now if absent)."""
    if not source_dir.is_dir():
        raise BlurbkitError(f"dataset {spec.name!r}: source folder not found", path=source_dir)
    root = cache_root() / "prepared"
    target = root / cache_key(spec, source_dir, options)
    if is_prepared(target):
        return target
    print(f"blurbkit: preparing {spec.name} from {source_dir} (cache {target})", file=sys.stderr)
    # Prepare under a private name, then rename: if another process got there first, keep theirs.
    scratch = root / f".{target.name}.{uuid.uuid4().hex}"
    source = None if spec.source is not None else source_dir.parent
    prepare(
        source, scratch, [spec.name], options, echo=lambda line: print(f"blurbkit: {line}", file=sys.stderr)
    )
    try:
        os.rename(scratch, target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not is_prepared(target):
            raise
    return target


def _check_options(
    spec: DatasetSpec, entry: dict[str, Any], options: ReadOptions | None, folder: Path
) -> None:
    if options is None:
        return
    wanted = dataset_options(spec, options)
    if wanted != entry.get("options", {}):
        raise BlurbkitError(
            f"dataset {spec.name!r} was prepared with {entry.get('options')}, not {wanted}; "
            "re-run `blurbkit prepare` with those options or pass the raw source folder",
            path=folder,
        )


def locate(
    dataset: str, data: str | Path | None = None, options: ReadOptions | None = None
) -> tuple[Path, dict[str, Any]]:
    """(prepared folder holding `dataset`, its manifest entry), preparing raw data on the fly."""
    spec = get_dataset(dataset)
    if data is None and spec.source is not None:
        folder = _cached(spec, spec.source, options or ReadOptions())
    else:
        root = resolve_data(data)
        if is_prepared(root):
            manifest = _read_manifest(root)
            if dataset not in manifest["datasets"]:
                why = manifest.get("skipped", {}).get(dataset, "not selected when it was prepared")
                raise BlurbkitError(
                    f"dataset {dataset!r} is not in this prepared directory ({why})", path=root
                )
            entry = manifest["datasets"][dataset]
            _check_options(spec, entry, options, root)
            return root, entry
        folder = _cached(spec, spec.source or root / dataset, options or ReadOptions())
    return folder, _read_manifest(folder)["datasets"][dataset]


def load_split(
    dataset: str, split: str, data: str | Path | None = None, options: ReadOptions | None = None
) -> list[dict[str, Any]]:
    """The canonical records (data/schema.py) of one split."""
    folder, info = _split_entry(dataset, split, data, options)
    return checked_records(get_dataset(dataset), folder / info["file"])


def split_size(
    dataset: str, split: str, data: str | Path | None = None, options: ReadOptions | None = None
) -> int:
    """The number of records load_split returns, from the prepared manifest: plans count every split
    of every dataset they cover, and parsing ChemProt's three splits to count them took 2.5 s."""
    return int(_split_entry(dataset, split, data, options)[1]["records"])


def _split_entry(dataset: str, split: str, data: str | Path | None, options: ReadOptions | None) -> tuple[Path, dict[str, Any]]:
    if options is not None and not isinstance(options, ReadOptions):
        raise BlurbkitError(f"options must be a ReadOptions (blurbkit.data.readers.base), not {options!r}")
    if split not in SPLITS:
        raise BlurbkitError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
    folder, entry = locate(dataset, data, options)
    info = entry["splits"].get(split)
    if info is None or info["status"] != "ok":
        raise SplitUnavailable(info["reason"] if info else f"dataset {dataset!r} has no {split} split")
    return folder, info


def checked_records(spec: DatasetSpec, path: Path) -> list[dict[str, Any]]:
    """A prepared split's records, each checked against its task type's fields: a file edited by
    hand fails here, by line, instead of as a KeyError in training or scoring."""
    records = []
    for line, record in parse_jsonl(read_lines(path), path):
        problem = spec.task.record_problem(spec, record)
        if problem:
            raise BlurbkitError(f"record {record.get('id')!r}: {problem} (prepare the dataset again)", path=path, line=line)
        records.append(record)
    return records


def split_notes(
    dataset: str, data: str | Path | None = None, options: ReadOptions | None = None
) -> list[str]:
    """Every note about the dataset's splits (deviations, count differences, missing splits), each
    prefixed with its split, e.g. 'train: LOCAL DEVIATION from BLURB: ...'."""
    return split_note_lines(dataset, locate(dataset, data, options)[1])


def load_manifest(data: str | Path | None = None, options: ReadOptions | None = None) -> dict[str, Any]:
    """The manifest of a prepared directory; for a raw folder, the merged manifests of every
    registered dataset found in it (each prepared into the cache if needed)."""
    root = resolve_data(data)
    if is_prepared(root):
        return _read_manifest(root)
    merged: dict[str, Any] = {
        "source": str(root.resolve()),
        "datasets": {},
        "skipped": {},
        "local_deviations": [],
    }
    for name, spec in all_datasets().items():
        source_dir = spec.source or root / name
        if not source_dir.is_dir():
            merged["skipped"][name] = f"source folder {source_dir} not found"
            continue
        manifest = _read_manifest(_cached(spec, source_dir, options or ReadOptions()))
        merged["datasets"][name] = manifest["datasets"][name]
        merged["local_deviations"] += manifest.get("local_deviations", [])
    return merged


def subsample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `limit` records, kept in file order (budget and low-resource runs)."""
    if limit is None or limit >= len(records):
        return records
    chosen = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in chosen]
