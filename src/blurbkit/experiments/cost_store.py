"""The fine-tuning cost table's rows in the results store: study "cost", one row per model and
machine (the CPU, device, threads and precision are part of its settings, so another machine adds
rows and a re-measurement on the same one replaces its row); back out as the report's sections; and
the import of an earlier `blurbkit cost` csv, measuring nothing.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import check_input_file
from blurbkit.store.labels import DEFAULT_STORE_LABEL
from blurbkit.store.results import ResultsStore, RunKey
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.provenance import blurbkit_commit

STUDY = "cost"
PAPER_SETTING = {"epochs": 3, "batch_size": 32, "max_length": 128}
MACHINE_KEYS = ("cpu", "device", "torch_threads")  # in a row's settings: what makes it another machine


def cost_key(dataset: str, model: str, row: dict[str, Any], machine: dict[str, Any]) -> RunKey:
    setting = {"epochs_timed": row["epochs_timed"], "precision": row["precision"],
               **{k: machine.get(k) for k in MACHINE_KEYS}}
    budget = f"custom-train{row['train_examples_timed']}" if row["extrapolated"] else "full"
    variant = f"batch{PAPER_SETTING['batch_size']}-len{PAPER_SETTING['max_length']}"
    return RunKey(STUDY, variant, model, get_dataset(dataset).name, 0, budget, json.dumps(setting, sort_keys=True))


def store_costs(path: str | Path, dataset: str, models: Sequence[str], rows: Sequence[dict[str, Any]],
                machine: dict[str, Any]) -> None:
    """One row per measured model (`models`: their store labels); the measurement and the machine in
    its test metrics, no score (the run's score on 32 test examples means nothing)."""
    store = ResultsStore(path)
    try:
        commit = blurbkit_commit()
        for model, row in zip(models, rows, strict=True):
            notes = ["timing only: randomly initialised weights"] if row["weights"].startswith("random") else []
            metrics = {"metric": "fine-tuning cost", "test": {**row, "machine": machine}, "dev": {},
                       "wall_seconds": row["timed_seconds"], "train_examples_per_second": row["examples_per_second"],
                       "notes": notes}
            store.add(cost_key(dataset, model, row, machine), metrics, commit, None, replace=True)
    finally:
        store.close()


def cost_sections(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored cost rows as tables: one per (dataset, machine), each {dataset, machine, rows} in store order."""
    sections: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.get("status", "ok") != "ok":
            continue
        test = json.loads(row["test_metrics"])
        machine = test.pop("machine", {})
        key = (row["dataset"], json.dumps({k: machine.get(k) for k in MACHINE_KEYS}, sort_keys=True))
        section = sections.setdefault(key, {"dataset": row["dataset"], "machine": machine, "rows": {}})
        section["rows"][row["model"]] = test  # a later measurement of a model replaces an earlier one
    return [{**s, "rows": list(s["rows"].values())} for s in sections.values()]


HARDWARE_LINE = re.compile(r"Hardware: (?P<cpu>.+?) \((?P<device>[^)]+)\), (?P<cpus>\d+) logical CPUs, "
                           r"(?P<threads>\d+) torch thread\(s\); load average (?P<load>\[[^\]]*\])")
INTS = ("parameters", "train_examples_timed", "epochs_timed", "train_split")
REQUIRED_COLUMNS = ("model", "weights", "timed_seconds", "examples_per_second", "epochs_timed", "extrapolated", "precision")  # what the store and the cost page read


def import_cost_csv(path: Path, dataset: str, store: str | Path) -> list[dict[str, Any]]:
    """Store the rows of an earlier `blurbkit cost` table (its csv; the hardware line of the md beside
    it, when there, names device, CPU count and load), measuring nothing."""
    check_input_file(path)

    def bad(what: str, line: int | None = None) -> BlurbkitError:
        return BlurbkitError(f"not a cost table written by blurbkit cost ({what})", path=path, line=line)

    try:
        reader = csv.DictReader(path.read_text("utf-8").splitlines())
        lacking = [c for c in (*REQUIRED_COLUMNS, "cpu", "torch_threads") if c not in (reader.fieldnames or [])]
        if lacking:
            raise bad(f"no column {', '.join(lacking)}", 1)
        rows, records = [], []
        for r in reader:
            if None in r:  # DictReader keeps cells past the header under the key None
                raise bad("more cells than the header has columns", reader.line_num)
            records.append(r)
            row: dict[str, Any] = {k: v for k, v in r.items() if k not in ("cpu", "torch_threads")}
            for name, value in row.items():
                try:
                    if value in ("", None):
                        row[name] = None
                    elif name in INTS:
                        row[name] = int(value)
                    elif name == "extrapolated":
                        row[name] = value == "True"
                    elif name not in ("model", "weights", "precision"):
                        row[name] = float(value)
                except (TypeError, ValueError):
                    kind = "a whole number" if name in INTS else "a number"
                    raise bad(f"{name} {value!r} is not {kind}", reader.line_num) from None
            rows.append(row)
        if not records:
            raise bad("no rows")
        machine: dict[str, Any] = {"cpu": records[0]["cpu"], "torch_threads": int(records[0]["torch_threads"])}
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as err:
        raise bad(f"{type(err).__name__}: {err}") from None
    try:
        described = HARDWARE_LINE.search(path.with_suffix(".md").read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        described = None
    if described:
        machine.update(device=described["device"], cpus=int(described["cpus"]), load_average=json.loads(described["load"]))
    machine["imported_from"] = path.name
    labels = [DEFAULT_STORE_LABEL if r["model"] == "MiniLM-L6-H384 (default)" else r["model"] for r in rows]
    store_costs(store, dataset, labels, rows, machine)
    return rows
