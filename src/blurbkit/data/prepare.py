"""`blurbkit prepare`: raw distributions -> canonical JSONL + manifest.json.

OUT/{dataset}/{train,dev,test}.jsonl hold the records of data/schema.py; OUT/manifest.json says,
per dataset and split, the measured count in BLURB's unit (spec.unit), the published count, the
difference and the notes explaining it, the sha256 of every source file read, the options used
(local deviations are listed on their own) and blurbkit's version. The whole OUT directory is
built under a temporary name and renamed into place, so a failure leaves nothing behind.

A split a distribution lacks (SplitUnavailable: EBM PICO train) is recorded as missing with its
reason; any other read error is bad input and stops the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import blurbkit
from blurbkit.data.readers import SplitUnavailable, read_split
from blurbkit.data.readers.base import ReadOptions
from blurbkit.data.schema import Record
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, check_replaceable, clean_stale, sha256_file, write_json
from blurbkit.tasks.registry import BUILTIN_ORIGIN, SPLITS, DatasetSpec, all_datasets

MANIFEST = "manifest.json"
FORMAT = 1  # manifest layout version
DEVIATION = "LOCAL DEVIATION"

Echo = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)  # progress must show while the next dataset is read, even when piped


def dataset_options(spec: DatasetSpec, options: ReadOptions) -> dict[str, Any]:
    """The options that change this dataset's records (and so belong in its manifest and cache key)."""
    return options.for_reader(spec.reader)


def _check_ids(spec: DatasetSpec, split: str, records: list[Record], path: Path | None) -> None:
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise BlurbkitError(f"dataset {spec.name!r} {split}: record id {record['id']!r} occurs twice", path=path)
        seen.add(record["id"])


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def prepare_dataset(spec: DatasetSpec, source_dir: Path, out: Path, options: ReadOptions) -> dict[str, Any]:
    """Write OUT/{name}/{split}.jsonl for every split; return the dataset's manifest entry."""
    entry: dict[str, Any] = {
        "title": spec.title,
        "task_type": spec.task_type,
        "metric": spec.metric,
        "unit": spec.unit,
        "reader": spec.reader,
        "in_blurb": spec.in_blurb,
        "source_dir": str(source_dir.resolve()),
        "options": dataset_options(spec, options),
        "splits": {},
        "source_files": {},
    }
    hashed: dict[Path, str] = {}
    for split in SPLITS:
        published = spec.published.get(split)
        try:
            data = read_split(spec, source_dir, split, options)
        except SplitUnavailable as err:
            entry["splits"][split] = {
                "status": "missing",
                "reason": str(err),
                "published": published,
                "measured": None,
            }
            continue
        where = data.files[0] if data.files else None
        if not data.records:  # e.g. DDI XML whose sentences hold fewer than two drugs: nothing to train or score
            raise BlurbkitError(f"dataset {spec.name!r} {split}: the source files yield no records", path=where)
        _check_ids(spec, split, data.records, where)
        path = out / spec.name / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:  # inside the atomic output dir
            for record in data.records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        measured = spec.task.measure(spec, data.records)
        notes = list(data.notes)
        if published is not None and measured != published:
            notes.append(
                f"measured {measured} {spec.unit} vs {published} published ({measured - published:+d})"
            )
            if split in spec.count_notes:  # why it differs, from the dataset's registry table
                notes.append(spec.count_notes[split])
        entry["splits"][split] = {
            "status": "ok",
            "file": f"{spec.name}/{split}.jsonl",
            "records": len(data.records),
            "measured": measured,
            "published": published,
            "difference": None if published is None else measured - published,
            "details": spec.task.details(spec, data.records),
            "notes": notes,
            "source_files": [_relative(p, source_dir) for p in data.files],
        }
        for file in data.files:
            if file not in hashed:
                hashed[file] = sha256_file(file)
    entry["source_files"] = {_relative(p, source_dir): digest for p, digest in sorted(hashed.items())}
    return entry


def source_dir_of(spec: DatasetSpec, source: Path | None) -> Path | None:
    """A user dataset's own folder, else SOURCE/{name}."""
    if spec.source is not None:
        return spec.source
    return None if source is None else source / spec.name


def _no_folder(first: DatasetSpec, missing: list[str], source: Path | None) -> str:
    """Where the first missing dataset's folder was looked for, and who said so."""
    names = ", ".join(missing)
    if first.source is not None:  # a user dataset's own folder, named by its TOML
        return f"no folder for {names}: {first.origin} names source {str(first.source)!r}, which is not a folder"
    where = f"in {source}" if source is not None else "(no --source given)"
    # A user dataset's TOML without `source` falls back to --source: name the file that could say where.
    unsourced = f" ({first.origin} names no source)" if first.origin not in (None, BUILTIN_ORIGIN) else ""
    expected = source / first.name if source is not None else f"SOURCE/{first.name}"
    return f"no folder for {names} {where}{unsourced}; expected e.g. {expected}"


def select(names: Iterable[str] | None) -> list[DatasetSpec]:
    specs = all_datasets()
    if names is None:
        return list(specs.values())
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise BlurbkitError(f"unknown dataset(s) {', '.join(unknown)} (known: {', '.join(specs)})")
    return [specs[name] for name in names]


def _check_out(out: Path, source: Path | None) -> None:
    if source is not None and out.resolve().is_relative_to(source.resolve()):
        raise BlurbkitError(
            "--out must not be inside the source folder (the raw files are read-only inputs)", path=out
        )
    check_replaceable(out, MANIFEST, "a blurbkit prepared directory")


def deviations(manifest: dict[str, Any]) -> list[str]:
    return [
        f"{name} {split}: {note}"
        for name, entry in manifest["datasets"].items()
        for split, info in entry["splits"].items()
        for note in info.get("notes", ())
        if DEVIATION in note
    ]


def prepare(
    source: Path | None,
    out: Path,
    names: Iterable[str] | None = None,
    options: ReadOptions | None = None,
    echo: Echo = _print,
) -> dict[str, Any]:
    """Prepare the chosen datasets (default: all registered) from SOURCE into OUT; return the manifest."""
    options = options or ReadOptions()
    specs = select(names)
    if source is not None and not source.is_dir():
        raise BlurbkitError("source folder not found", path=source)
    _check_out(out, source)
    folders = {spec.name: source_dir_of(spec, source) for spec in specs}
    missing = [name for name, folder in folders.items() if folder is None or not folder.is_dir()]
    # Before anything is written: a dataset asked for by name, or a source holding none of them (a
    # folder one level too high or too low), is a mistake, not a subset.
    if names is not None and missing:
        raise BlurbkitError(_no_folder(next(spec for spec in specs if spec.name == missing[0]), missing, source))
    if specs and len(missing) == len(specs):
        raise BlurbkitError(f"none of the {len(specs)} datasets' folders is here (expected e.g. "
                            f"{folders[specs[0].name] or 'SOURCE/' + specs[0].name}); is --source the folder that holds them?",
                            path=source)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "blurbkit_version": blurbkit.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": None if source is None else str(source.resolve()),
        "options": asdict(options),
        "local_deviations": [],
        "datasets": {},
        "skipped": {},
    }
    clean_stale(out)  # what a killed earlier write left beside it (and an interrupted replace's old version)
    with atomic_dir(out) as tmp:
        for spec in specs:
            folder = folders[spec.name]
            if folder is None or not folder.is_dir():
                reason = f"source folder {folder} not found" if folder else "no --source given"
                manifest["skipped"][spec.name] = reason
                echo(f"skip     {spec.name:<14} ({reason})")
                continue
            started = time.perf_counter()
            entry = prepare_dataset(spec, folder, tmp, options)
            manifest["datasets"][spec.name] = entry
            counts = "  ".join(
                f"{split} {_cell(info, published=False)}" for split, info in entry["splits"].items()
            )
            echo(f"prepared {spec.name:<14} {counts}  ({time.perf_counter() - started:.1f}s)")
        manifest["local_deviations"] = deviations(manifest)
        write_json(tmp / MANIFEST, manifest)
    for line in manifest["local_deviations"]:
        echo(f"!! {line}")
    return manifest


def _cell(info: dict[str, Any], published: bool = True) -> str:
    measured = "missing" if info["status"] != "ok" else str(info["measured"])
    if not published:
        return measured
    return f"{measured}/{info['published'] if info.get('published') is not None else '-'}"


def split_note_lines(name: str, entry: dict[str, Any]) -> list[str]:
    """Every note of a dataset, each prefixed with its split."""
    lines = []
    for split, info in entry["splits"].items():
        notes = [info["reason"]] if info["status"] != "ok" else info.get("notes", [])
        lines.extend(note if note.startswith(f"{split}:") else f"{split}: {note}" for note in notes)
    return lines


def format_table(manifest: dict[str, Any]) -> str:
    """The counts table: measured/published per split, notes numbered below."""
    header = ["dataset", "task type", "metric", *SPLITS, "notes"]
    rows, footnotes = [header], []
    for name, entry in manifest["datasets"].items():
        marks = []
        for line in split_note_lines(name, entry):
            footnotes.append(f"{name} {line}")
            marks.append(str(len(footnotes)))
        cells = [_cell(entry["splits"][split]) if split in entry["splits"] else "-" for split in SPLITS]
        rows.append([name, entry["task_type"], entry["metric"], *cells, ",".join(marks)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.append(
        "counts: measured/published in each dataset's unit (entity mentions, PICO-tagged words, instances)"
    )
    lines.extend(f"  [{i}] {note}" for i, note in enumerate(footnotes, start=1))
    for name, reason in manifest.get("skipped", {}).items():
        lines.append(f"  skipped {name}: {reason}")
    return "\n".join(lines)
