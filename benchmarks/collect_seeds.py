"""One dataset's seed runs (`blurbkit finetune --seed S --out RUN_DIR`, each run directory finished)
gathered into one result file: per seed the test and best dev score, the dev score after every epoch,
training and wall seconds, threads, and whether the run failed (no better than the trivial predictor
on test, the stability study's rule); then the mean ± sample std over the seeds.

    python benchmarks/collect_seeds.py RUN_DIR [RUN_DIR ...] --machine "..." --out benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from blurbkit.fileio import write_json


def seed_entry(run: Path) -> tuple[int, str, dict]:
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((run / "run.json").read_text(encoding="utf-8"))
    epochs = [json.loads(line) for line in (run / "epochs.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    metric = metrics["metric"]
    entry = {
        f"test_{metric}": round(100 * metrics["test"]["score"], 2),
        f"dev_{metric}": round(100 * metrics["dev"]["score"], 2),
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": metrics["wall_seconds"],
        f"trivial_test_{metric}": round(100 * metrics["test"]["trivial_score"], 2),
        "failed": metrics["test"]["failed"],
        f"dev_{metric}_by_epoch": [round(100 * e["score"], 2) for e in epochs if e.get("split") == "dev"],
        "threads": metrics["threads"],
        "precision": metrics["precision"],
        "resumed": metrics["resumed"],
        "blurbkit_commit": config["blurbkit_commit"],
    }
    return int(config["config"]["seed"]), metrics["dataset"], entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories of one dataset")
    parser.add_argument("--machine", required=True, help="the CPU class and what else ran, for the record")
    parser.add_argument("--command", default="blurbkit finetune --dataset DATASET --seed S --data ../shared/data --out RUN --checkpoint-every 300")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    seeds, datasets = {}, set()
    for run in args.runs:
        if not (run / "metrics.json").is_file():
            print(f"collect_seeds: {run}: no metrics.json (the run has not finished)", file=sys.stderr)
            return 2
        seed, dataset, entry = seed_entry(run)
        seeds[str(seed)], _ = entry, datasets.add(dataset)
    if len(datasets) != 1:
        print(f"collect_seeds: runs of several datasets ({', '.join(sorted(datasets))}); give one dataset's runs", file=sys.stderr)
        return 2
    tests = [next(v for k, v in e.items() if k.startswith("test_")) for e in seeds.values()]
    write_json(args.out, {
        "dataset": datasets.pop(),
        "model": "MiniLM-L6-H384 (default)",
        "recipe": "default (tasks/datasets.toml), full training data",
        "machine": args.machine,
        "command": args.command,
        "seeds": dict(sorted(seeds.items(), key=lambda kv: int(kv[0]))),
        "test_mean": round(statistics.mean(tests), 2),
        "test_std": round(statistics.stdev(tests), 2) if len(tests) > 1 else None,
        "failed": sum(e["failed"] for e in seeds.values()),
    })
    print(f"wrote {args.out}: {len(tests)} seed(s), test {statistics.mean(tests):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
