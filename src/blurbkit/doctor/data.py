"""The BLURB data folder: every dataset's files present and readable, raw or prepared, and
whether the raw files still match what the prepared cache (or a prepared folder's manifest) was made from."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blurbkit.doctor.check import Check


def data_folder(data: str | None) -> Path:
    """--data, else $BLURBKIT_DATA, else ../shared/data (as every data command resolves it)."""
    from blurbkit.data.load import DEFAULT_DATA, ENV_DATA

    if data:
        return Path(data).expanduser()
    env = os.environ.get(ENV_DATA)
    return Path(env).expanduser() if env else DEFAULT_DATA


def _quick_options(name: str) -> Any:
    """The ReadOptions the quick benchmark reads dataset `name` with."""
    from blurbkit.data.readers.base import ReadOptions
    from blurbkit.experiments.benchmark import budget_profile

    return ReadOptions(pico_train_from_dev=budget_profile("quick", name).get("pico_train_from_dev"))


def _readable(path: Path) -> str | None:
    """None when `path` is a readable file, else what is wrong with it."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    return None


def _changed_sources(entry: dict[str, Any]) -> tuple[list[str], int] | None:
    """(source files whose sha256 differs from the manifest's, files compared); None when the
    source folder the entry was prepared from is not here."""
    from blurbkit.fileio import sha256_file

    source = Path(entry.get("source_dir", ""))
    files = entry.get("source_files") or {}
    if not files or not source.is_dir():
        return None
    changed = []
    for relative, digest in files.items():
        path = source / relative if not Path(relative).is_absolute() else Path(relative)
        try:
            if sha256_file(path) != digest:
                changed.append(relative)
        except OSError:
            changed.append(relative)
    return changed, len(files)


def data_checks(data: Path) -> Iterator[Check]:
    from blurbkit.data.load import ENV_DATA, is_prepared

    if not data.is_dir():
        yield Check("data", "data folder", "problem", f"{data} not found",
                    f"pass --data DIR or set {ENV_DATA}=DIR (the raw BLURB folder with bc5chem/, chemprot/, ...; "
                    "the main job reads ../shared/data)")
        return
    if is_prepared(data):
        yield from _prepared_checks(data)
    else:
        yield from _raw_checks(data)


def _raw_checks(data: Path) -> Iterator[Check]:
    from blurbkit.data.prepare import dataset_options
    from blurbkit.tasks.registry import blurb_datasets

    yield Check("data", "data folder", "ok", f"{data} (raw BLURB files; prepared into the cache on first use)")
    missing_sets = []
    cached = _cache_entries()
    for spec in blurb_datasets():
        folder = data / spec.name
        if not folder.is_dir():
            missing_sets.append(spec.name)
            yield Check("data", spec.name, "problem", f"folder {folder} missing",
                        f"copy the {spec.name}/ folder of the BLURB data into {data}")
            continue
        optional = dataset_options(spec, _quick_options(spec.name)).get("pico_train_from_dev")
        problems, notes, present = [], [], []
        for split, relative in spec.files.items():
            wrong = _readable(folder / relative)
            if wrong is None:
                present.append(relative)
            elif wrong == "missing" and split == "train" and optional:
                notes.append(f"{relative} not distributed: the quick benchmark carves "
                             f"{_quick_options(spec.name).pico_train_from_dev} dev abstracts into train")
            else:
                problems.append(f"{relative} {wrong}")
        if problems:
            unreadable = [p for p in problems if "unreadable" in p or "not a file" in p]
            fix = (f"chmod -R a+rX {folder}" if unreadable and len(unreadable) == len(problems)
                   else f"restore {', '.join(p.split()[0] for p in problems)} in {folder} from the BLURB data")
            yield Check("data", spec.name, "problem", "; ".join(problems), fix)
            continue
        sources = _cache_comparison(folder, cached)
        yield Check("data", spec.name, "ok", " ".join(present) + (f"; {sources}" if sources else ""))
        for note in notes:
            yield Check("data", spec.name, "note", note)
    if missing_sets:
        others = [s.name for s in blurb_datasets() if s.name not in missing_sets]
        if others:
            yield Check("data", "without them", "note",
                        f"the others still run: blurbkit benchmark --quick --data {data} --datasets {','.join(others)}")


def _cache_entries() -> dict[str, tuple[str, dict[str, Any]]]:
    """{resolved source folder: (created, manifest entry)} of the newest prepared cache entry per folder."""
    from blurbkit.paths import cache_root

    root = cache_root() / "prepared"
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    if not root.is_dir():
        return newest
    for path in root.glob("*/manifest.json"):
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        for entry in manifest.get("datasets", {}).values():
            key, created = entry.get("source_dir", ""), manifest.get("created", "")
            if key and created >= newest.get(key, ("", {}))[0]:
                newest[key] = (created, entry)
    return newest


def _cache_comparison(folder: Path, cached: dict[str, tuple[str, dict[str, Any]]]) -> str:
    found = cached.get(str(folder.resolve()))
    if not found:
        return "not prepared yet"
    result = _changed_sources(found[1])
    if result is None:
        return ""
    changed, total = result
    if changed:
        return f"{len(changed)} of {total} files changed since prepared on {found[0]} (re-prepared on next use)"
    return f"sha256 of {total} files = prepared cache"


def _prepared_checks(data: Path) -> Iterator[Check]:
    from blurbkit.data.prepare import dataset_options
    from blurbkit.fileio import read_json
    from blurbkit.tasks.registry import SPLITS, blurb_datasets

    manifest = read_json(data / "manifest.json")
    datasets = manifest.get("datasets", {}) if isinstance(manifest, dict) else {}
    source = manifest.get("source") if isinstance(manifest, dict) else None
    redo = f"blurbkit prepare --source {source or 'RAW_DIR'} --out {data} --pico-train-from-dev 200"
    yield Check("data", "data folder", "ok", f"{data} (prepared by blurbkit prepare, manifest.json)")
    for spec in blurb_datasets():
        entry = datasets.get(spec.name)
        if entry is None:
            why = (manifest.get("skipped") or {}).get(spec.name, "not selected when it was prepared")
            yield Check("data", spec.name, "problem", f"not in this prepared folder ({why})",
                        f"{redo}, or pass the raw folder: --data {source or '../shared/data'}")
            continue
        wanted = dataset_options(spec, _quick_options(spec.name))
        problems = []
        if wanted != entry.get("options", {}):
            problems.append(f"prepared with {entry.get('options')}, the quick benchmark reads it with {wanted}")
        for split in SPLITS:
            info = entry.get("splits", {}).get(split) or {"status": "missing", "reason": "no entry"}
            if info.get("status") != "ok":
                problems.append(f"{split}: {info.get('reason', 'missing')}")
                continue
            wrong = _readable(data / info["file"])
            if wrong:
                problems.append(f"{info['file']} {wrong}")
        if problems:
            yield Check("data", spec.name, "problem", "; ".join(problems), redo)
            continue
        compared = _changed_sources(entry)
        if compared is None:
            detail = "splits present; raw source not here, sha256 not compared"
        elif compared[0]:
            detail = f"{len(compared[0])} of {compared[1]} raw files changed since prepared ({', '.join(compared[0][:3])})"
            yield Check("data", spec.name, "warn", detail, f"{redo} (the prepared splits are stale but usable)")
            continue
        else:
            detail = f"splits present; sha256 of {compared[1]} raw files = manifest"
        yield Check("data", spec.name, "ok", detail)
