"""The protocol's seeds of one or more datasets, gathered from the result files of several sessions
into one markdown table: per dataset the seeds found, test mean ± sample std, min-max, how many runs
failed (no better than the trivial predictor on test) and PubMedBERT's published score; then one row
per seed (test, dev, best epoch, training minutes, threads, the file it came from) and each file's
machine line, since seeds of one dataset may have run on different CPU classes.

    python benchmarks/protocol_seeds.py FILE [FILE ...] [--table benchmarks/results/blurb_full_minilm.json] --out NAME.md

FILE: a seed result file, either `collect_seeds.py`'s ("seeds": {seed: {...}}) or the older list form
("runs": [{"seed": ..., "test_f1": ...}]). A seed found in two files must agree on its test score.
--table: the full-data table's scores ({dataset: score}), its run being seed 0 where no file has one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from blurbkit.experiments.benchmark import reference_results
from blurbkit.fileio import write_text
from blurbkit.tasks.registry import get_dataset


class BadFile(Exception):
    pass


def _test_score(entry: dict) -> float:
    scores = [v for k, v in entry.items() if k.startswith("test_")]
    if len(scores) != 1 or not isinstance(scores[0], (int, float)):
        raise ValueError("no single test_<metric> score")
    return float(scores[0])


def _normalise(entry: dict) -> dict:
    """One seed's row, whatever the file's generation called its fields."""
    dev = next((v for k, v in entry.items() if k.startswith("dev_") and not k.endswith("_by_epoch")), None)
    return {
        "test": _test_score(entry),
        "dev": dev,
        "best_epoch": entry.get("best_epoch", entry.get("best_dev_epoch")),
        "train_seconds": entry.get("train_seconds"),
        "threads": entry.get("threads"),
        "failed": entry.get("failed"),
        "source": entry.get("source"),  # a seed a file quotes from elsewhere
    }


def read_seeds(path: Path) -> tuple[str, str, dict[int, dict]]:
    """(dataset, machine, {seed: row}) of one result file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BadFile(f"{path}: unreadable ({err})") from None
    try:
        if "seeds" in data:
            entries = {int(seed): entry for seed, entry in data["seeds"].items()}
            dataset = data["dataset"]
        else:  # the list form keeps the dataset in its description only
            entries = {int(run["seed"]): {k: v for k, v in run.items() if k != "seed"} for run in data["runs"]}
            dataset = get_dataset(path.name.split("_full_")[0]).name
        return dataset, data.get("machine", "not recorded"), {seed: _normalise(e) for seed, e in entries.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BadFile(f"{path}: not a seed result file ({type(err).__name__}: {err})") from None


def gather(files: list[Path], table: dict[str, float] | None) -> tuple[dict[str, dict[int, dict]], dict[str, str]]:
    """{dataset: {seed: row with its file}}, {file name: machine}; a seed in two files must agree."""
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
            known.setdefault(seed, row | {"file": path.name + (f" (quoting {source.split()[0]})" if source else "")})
    for dataset, known in by_dataset.items():
        if 0 not in known and table and dataset in table:
            known[0] = {"test": float(table[dataset]), "dev": None, "best_epoch": None, "train_seconds": None,
                        "threads": None, "failed": None, "file": "the full-data table's run"}
            machines.setdefault("the full-data table's run", "scores only; the README's full-data table says where and how each ran")
    return by_dataset, machines


def _cell(value: object, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(by_dataset: dict[str, dict[int, dict]], machines: dict[str, str]) -> str:
    published = reference_results()["PubMedBERT"]
    lines = ["# The protocol's seeds at full data", "",
             "| dataset | seeds | test mean ± sd | min - max | failed runs | PubMedBERT (paper) |", "|---|---|---|---|---|---|"]
    for dataset, seeds in by_dataset.items():
        tests = [row["test"] for row in seeds.values()]
        sd = f" ± {statistics.stdev(tests):.2f}" if len(tests) > 1 else ""
        failed = [row["failed"] for row in seeds.values()]
        recorded = sum(f is not None for f in failed)
        failed_cell = f"{sum(bool(f) for f in failed)} of the {recorded} that record it" if recorded else "not recorded"
        lines.append(f"| {get_dataset(dataset).title} | {len(tests)} ({', '.join(map(str, sorted(seeds)))}) | "
                     f"{statistics.mean(tests):.2f}{sd} | {min(tests):.2f} - {max(tests):.2f} | {failed_cell} | "
                     f"{_cell(published.get(dataset))} |")
    for dataset, seeds in by_dataset.items():
        lines += ["", f"## {get_dataset(dataset).title}", "",
                  "| seed | test | dev at the best epoch | best epoch | training min | threads | failed | from |", "|---|---|---|---|---|---|---|---|"]
        for seed, row in sorted(seeds.items()):
            minutes = None if row["train_seconds"] is None else row["train_seconds"] / 60
            lines.append(f"| {seed} | {row['test']:.2f} | {_cell(row['dev'])} | {_cell(row['best_epoch'])} | {_cell(minutes, 0)} | "
                         f"{_cell(row['threads'])} | {_cell(row['failed'])} | {row['file']} |")
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
        by_dataset, machines = gather(args.files, table)
        write_text(args.out, render(by_dataset, machines))
    except BadFile as err:
        print(f"protocol_seeds: {err}", file=sys.stderr)
        return 2
    for dataset, seeds in by_dataset.items():
        tests = [row["test"] for row in seeds.values()]
        print(f"{dataset}: {len(tests)} seed(s), test {statistics.mean(tests):.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
