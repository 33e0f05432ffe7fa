"""The protocol's seeds of one or more datasets, gathered from the result files of several sessions
into one markdown table: per dataset the seeds found, test mean ± sample std, min-max, how many runs
failed (no better than the trivial predictor on test) and PubMedBERT's published score; then one row
per seed (test, dev, best epoch, training minutes, threads, the file it came from) and each file's
machine line, since seeds of one dataset may have run on different CPU classes.

    python benchmarks/protocol_seeds.py FILE [FILE ...] [--table benchmarks/results/blurb_full_minilm.json] --out NAME.md

FILE: a seed result file, either `collect_seeds.py`'s ("seeds": {seed: {...}}) or the older list form
("runs": [{"seed": ..., "test_f1": ...}], its dataset named by the file name). A seed found in two files must
agree on its test score; a file's own run of it wins over a file that only quotes it ("source").
--table: the full-data table's scores ({dataset: score}), its run being seed 0 where no file has one (and
agreeing with a file's seed 0 where one has). A seed that does not record whether it failed is judged by the
trivial predictor's test score that the dataset's other seeds record.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.benchmark import reference_results
from blurbkit.fileio import write_text
from blurbkit.metrics.seeds import mean_std
from blurbkit.tasks.registry import get_dataset


class BadFile(Exception):
    pass


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is {value!r}, not a number")
    return float(value)


def _normalise(entry: dict) -> dict:
    """One seed's row, whatever the file's generation called its fields."""
    tests = [k for k in entry if k.startswith("test_")]
    if len(tests) != 1:
        raise ValueError("no single test_<metric> score")
    metric = tests[0].removeprefix("test_")
    failed = entry.get("failed")
    if failed is not None and not isinstance(failed, bool):
        raise ValueError(f"failed is {failed!r}, not true or false")
    test = _number(entry[tests[0]], tests[0])
    if test is None:
        raise ValueError(f"{tests[0]} is null")
    return {
        "test": test,
        "dev": _number(entry.get(f"dev_{metric}"), f"dev_{metric}"),
        "best_epoch": _number(entry.get("best_epoch", entry.get("best_dev_epoch")), "best_epoch"),
        "train_seconds": _number(entry.get("train_seconds"), "train_seconds"),
        "threads": _number(entry.get("threads"), "threads"),
        "trivial": _number(entry.get(f"trivial_test_{metric}"), f"trivial_test_{metric}"),
        "failed": failed,
        "source": entry.get("source"),  # a seed a file quotes from elsewhere
    }


def _dataset_of_name(stem: str) -> str:
    """The dataset a file name starts with (gad_full_..., ncbi_disease_...): its longest such prefix."""
    parts = stem.split("_")
    for end in range(len(parts), 0, -1):
        try:
            return get_dataset("_".join(parts[:end])).name
        except BlurbkitError:
            continue
    raise ValueError(f"no dataset named by {stem!r} (the list form names its dataset in the file name)")


def read_seeds(path: Path) -> tuple[str, str, dict[int, dict]]:
    """(dataset, machine, {seed: row}) of one result file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BadFile(f"{path}: unreadable ({err})") from None
    try:
        if "seeds" in data:
            entries = {int(seed): entry for seed, entry in data["seeds"].items()}
            dataset = get_dataset(data["dataset"]).name
        else:  # the list form keeps the dataset in its file name only (gad_full_...)
            entries = {int(run["seed"]): {k: v for k, v in run.items() if k != "seed"} for run in data["runs"]}
            dataset = _dataset_of_name(path.stem)
        if not entries:
            raise ValueError("no seeds")
        return dataset, data.get("machine", "not recorded"), {seed: _normalise(e) for seed, e in entries.items()}
    except (KeyError, TypeError, ValueError, AttributeError, BlurbkitError) as err:
        raise BadFile(f"{path}: not a seed result file ({type(err).__name__}: {err})") from None


def gather(files: list[Path], table: dict[str, float] | None) -> tuple[dict[str, dict[int, dict]], dict[str, str]]:
    """{dataset: {seed: row with its file}}, {file name: machine}. A seed in two files (or in a file and the
    table) must have the same test score; a file's own run of a seed wins over one that only quotes it."""
    by_dataset: dict[str, dict[int, dict]] = {}
    machines: dict[str, str] = {}
    for path in files:
        dataset, machine, seeds = read_seeds(path)
        machines[path.name] = machine
        known = by_dataset.setdefault(dataset, {})
        for seed, row in seeds.items():
            if seed in known and known[seed]["test"] != row["test"]:
                raise BadFile(f"{path}: {dataset} seed {seed} scores {row['test']} here but {known[seed]['test']} in {known[seed]['file']}")
            source = row.pop("source")
            if seed not in known or (known[seed]["quoted"] and not source):
                known[seed] = row | {"quoted": bool(source), "file": path.name + (f" (quoting {source.split()[0]})" if source else "")}
    for dataset, known in by_dataset.items():
        if table and dataset in table:
            if 0 in known and known[0]["test"] != table[dataset]:
                raise BadFile(f"the table's {dataset} run scores {table[dataset]} but seed 0 scores {known[0]['test']} in {known[0]['file']}")
            if 0 not in known:
                known[0] = {"test": table[dataset], "dev": None, "best_epoch": None, "train_seconds": None, "threads": None,
                            "trivial": None, "failed": None, "quoted": True, "file": "the full-data table's run"}
                machines.setdefault("the full-data table's run", "scores only; the README's full-data table says where and how each ran")
        _fill_failed(known)
    return by_dataset, machines


def _fill_failed(seeds: dict[int, dict]) -> None:
    """A seed that does not record whether it failed is judged by the trivial predictor's test score, which is
    the test set's, so any seed of the dataset that records it serves (the stability study's rule: no better)."""
    trivial = {row["trivial"] for row in seeds.values() if row["trivial"] is not None}
    if len(trivial) == 1:
        (score,) = trivial
        for row in seeds.values():
            if row["failed"] is None:
                row["failed"] = row["test"] <= score


def _cell(value: object, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return str(value)


def render(by_dataset: dict[str, dict[int, dict]], machines: dict[str, str], made_by: str) -> str:
    published = reference_results()["PubMedBERT"]
    lines = ["# The protocol's seeds at full data", "", f"Made by `{made_by}`.", "",
             "| dataset | seeds | test mean ± sd | min - max | runs no better than the trivial predictor | PubMedBERT (paper) |", "|---|---|---|---|---|---|"]
    for dataset, seeds in by_dataset.items():
        tests = [row["test"] for row in seeds.values()]
        mean, std = mean_std(tests)
        sd = f" ± {std:.2f}" if len(tests) > 1 else ""  # one seed has no spread to show
        failed = [row["failed"] for row in seeds.values()]
        recorded = sum(f is not None for f in failed)
        failed_cell = f"{sum(bool(f) for f in failed)} of {recorded}" if recorded else "not recorded"
        lines.append(f"| {get_dataset(dataset).title} | {len(tests)} ({', '.join(map(str, sorted(seeds)))}) | "
                     f"{mean:.2f}{sd} | {min(tests):.2f} - {max(tests):.2f} | {failed_cell} | "
                     f"{_cell(published.get(dataset))} |")
    for dataset, seeds in by_dataset.items():
        lines += ["", f"## {get_dataset(dataset).title}", "",
                  "| seed | test | dev at the best epoch | best epoch | training min | threads | failed | from |", "|---|---|---|---|---|---|---|---|"]
        for seed, row in sorted(seeds.items()):
            minutes = None if row["train_seconds"] is None else row["train_seconds"] / 60
            lines.append(f"| {seed} | {row['test']:.2f} | {_cell(row['dev'])} | {_cell(row['best_epoch'], 0)} | {_cell(minutes, 0)} | "
                         f"{_cell(row['threads'], 0)} | {_cell(row['failed'])} | {row['file']} |")
    lines += ["", "Where each file's runs ran:", ""]
    lines += [f"- {name}: {machine}" for name, machine in machines.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="seed result files (benchmarks/results/*seeds*.json)")
    parser.add_argument("--table", type=Path, help="the full-data table's scores; its run counts as seed 0 where no file has one")
    parser.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    args = parser.parse_args()
    try:
        table = None
        if args.table:
            try:
                table = json.loads(args.table.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise BadFile(f"{args.table}: unreadable ({err})") from None
            if not isinstance(table, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in table.values()):
                raise BadFile(f"{args.table}: not a table of scores ({{dataset: score}})")
        by_dataset, machines = gather(args.files, table)
        made_by = " ".join(["python benchmarks/protocol_seeds.py", *map(str, args.files),
                            *(["--table", str(args.table)] if args.table else []), "--out", str(args.out)])
        write_text(args.out, render(by_dataset, machines, made_by))
    except (BadFile, BlurbkitError) as err:
        print(f"protocol_seeds: {err}", file=sys.stderr)
        return 2
    for dataset, seeds in by_dataset.items():
        tests = [row["test"] for row in seeds.values()]
        print(f"{dataset}: {len(tests)} seed(s), test {mean_std(tests)[0]:.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
