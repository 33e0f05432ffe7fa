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

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import write_json

# run.json config keys that may differ between the seeds of one setting (where and how it ran, not what)
PER_RUN = {"seed", "out", "data", "overwrite", "resume", "threads", "progress", "checkpoint_every", "encode_cache"}


class BadRun(Exception):
    pass


def read_run(run: Path) -> tuple[dict, dict, list[dict]]:
    try:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        config = json.loads((run / "run.json").read_text(encoding="utf-8"))
        epochs = [json.loads(line) for line in (run / "epochs.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError as err:
        raise BadRun(f"{run}: no {Path(err.filename).name} (not a finished run directory)") from None
    except (OSError, ValueError) as err:
        raise BadRun(f"{run}: unreadable ({err})") from None
    return metrics, config, epochs


def setting(config: dict) -> dict:
    """What was run, with a key an older run.json lacks taken at its default."""
    from blurbkit.train.config import FinetuneConfig

    defaults = FinetuneConfig(config["config"]["dataset"]).to_json()
    return {k: v for k, v in (defaults | config["config"]).items() if k not in PER_RUN}


def seed_entry(run: Path, metrics: dict, config: dict, epochs: list[dict]) -> tuple[int, str, dict]:
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
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories of one dataset and one setting")
    parser.add_argument("--machine", required=True, help="the CPU class and what else ran, for the record")
    parser.add_argument("--command", default="blurbkit finetune --dataset DATASET --seed S --data ../shared/data --out RUN --checkpoint-every 300")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    seeds, first = {}, None
    try:
        for run in args.runs:
            metrics, config, epochs = read_run(run)
            try:
                seed, dataset, entry = seed_entry(run, metrics, config, epochs)
                this = setting(config)
            except (KeyError, TypeError, ValueError) as err:
                raise BadRun(f"{run}: not a finished run of this blurbkit ({type(err).__name__}: {err})") from None
            if first is None:
                first = (run, this, config)
            elif differ := sorted(k for k in this.keys() | first[1].keys() if this.get(k) != first[1].get(k)):
                raise BadRun(f"{run}: another setting than {first[0]} ({', '.join(differ)} differ); give the seeds of one setting")
            if str(seed) in seeds:
                raise BadRun(f"{run}: seed {seed} twice; give each seed once")
            seeds[str(seed)] = entry
    except BadRun as err:
        print(f"collect_seeds: {err}", file=sys.stderr)
        return 2
    run0, this, config = first
    tests = [next(v for k, v in e.items() if k.startswith("test_")) for e in seeds.values()]
    recipe = "the dataset's default recipe" if all(this.get(k) is None for k in ("lr", "batch_size", "epochs")) else \
        f"lr {this.get('lr')}, batch {this.get('batch_size')}, {this.get('epochs')} epochs"
    budget = [f"{k} {this[k]}" for k in ("max_train_examples", "max_eval_examples", "max_test_examples") if this.get(k)]
    try:
        write_json(args.out, {
            "dataset": this["dataset"],
            "model": "MiniLM-L6-H384 (the default model)" if this.get("model") is None else this["model"],
            "recipe": f"{recipe}, {'; '.join(budget) if budget else 'full training data'} (resolved: lr "
                      f"{config['resolved'].get('lr')}, batch {config['resolved'].get('batch_size')}, {config['resolved'].get('epochs')} epochs)",
            "machine": args.machine,
            "command": args.command,
            "seeds": dict(sorted(seeds.items(), key=lambda kv: int(kv[0]))),
            "test_mean": round(statistics.mean(tests), 2),
            "test_std": round(statistics.stdev(tests), 2) if len(tests) > 1 else None,
            "failed": sum(e["failed"] for e in seeds.values()),
        })
    except (OSError, BlurbkitError) as err:
        print(f"collect_seeds: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(tests)} seed(s), test {statistics.mean(tests):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
