"""BC5-chem, default MiniLM, full train set, 3 epochs, standard hyperparameters (lr 5e-5, batch 32,
warm-up 10%, weight decay 0.01): blurbkit's `finetune` against the plain Hugging Face Trainer
token-classification recipe, side by side in one process and one run.

Both are scored by blurbkit's official metric code (blurbkit.scoring.score_predictions) on
word-level predictions from each word's first subword. blurbkit keeps its best epoch by dev F1
(its recipe); the plain Trainer recipe keeps the last. Train examples/s = 3 x train set / the
training wall time (per-epoch dev evaluation excluded for blurbkit; the Trainer evaluates only
at the end).

Usage: python benchmarks/finetune_bc5chem.py [--data ../shared/data] [--model DIR] [--epochs 3]
Writes benchmarks/results/finetune_bc5chem.json and prints it as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def trainer_side(args: argparse.Namespace) -> dict:
    from blurbkit.data.load import load_split
    from blurbkit.models.loading import load_tokenizer, resolve_model_dir
    from blurbkit.scoring import score_predictions
    from blurbkit.speed import hf_recipe
    from blurbkit.speed.machine import peak_memory
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset("bc5chem")
    model_dir = resolve_model_dir(args.model)
    splits = {name: load_split("bc5chem", name, args.data) for name in ("train", "dev", "test")}
    tokenizer = load_tokenizer(model_dir)
    labels = spec.task.codec(spec, splits["train"]).labels
    features = {name: hf_recipe.token_features(records, tokenizer, labels) for name, records in splits.items()}
    # the Trainer makes its output folder even when it saves nothing: a temporary one, removed after
    with peak_memory() as memory, tempfile.TemporaryDirectory(prefix="blurbkit_hf_") as workdir:
        run = hf_recipe.train(model_dir, "token", features["train"][0], labels, batch_size=32, lr=5e-5,
                              epochs=args.epochs, seed=args.seed, weight_decay=0.01, progress=args.progress,
                              workdir=workdir)
        scores, eval_seconds = {}, {}
        for split in ("dev", "test"):
            started = time.perf_counter()
            predictions = hf_recipe.predict(run, "token", splits[split], *features[split])
            eval_seconds[split] = time.perf_counter() - started
            scores[split] = score_predictions(spec, splits[split], predictions)
    return {
        "dev_f1": round(scores["dev"]["score"], 4),
        "test_f1": round(scores["test"]["score"], 4),
        "test_precision": round(scores["test"]["precision"], 4),
        "test_recall": round(scores["test"]["recall"], 4),
        "train_examples_per_second": round(len(splits["train"]) * args.epochs / run.train_seconds, 2),
        "train_seconds": round(run.train_seconds, 1),
        "test_eval_examples_per_second": round(len(splits["test"]) / eval_seconds["test"], 1),
        "peak_memory_mb": memory.get("peak_mb"),
    }


def blurbkit_side(args: argparse.Namespace) -> dict:
    from blurbkit.speed.machine import peak_memory, release_memory
    from blurbkit.train.config import FinetuneConfig
    from blurbkit.train.run import run_finetune

    release_memory()
    config = FinetuneConfig(dataset="bc5chem", data=args.data, model=args.model, seed=args.seed, lr=5e-5,
                            batch_size=32, epochs=args.epochs, save_model=False, progress=args.progress,
                            encode_cache=False)
    with peak_memory() as memory:
        metrics = run_finetune(config)
    return {
        "dev_f1": round(metrics["dev"]["score"], 4),
        "test_f1": round(metrics["test"]["score"], 4),
        "test_precision": round(metrics["test"]["precision"], 4),
        "test_recall": round(metrics["test"]["recall"], 4),
        "best_epoch": metrics["best_epoch"],
        "train_examples_per_second": metrics["train_examples_per_second"],
        "train_seconds": metrics["train_seconds"],
        "precision": metrics["precision"],
        "peak_memory_mb": memory.get("peak_mb"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--model", help="local model directory (default: the embedded MiniLM-L6-H384)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    from blurbkit.fileio import write_json
    from blurbkit.speed.machine import machine_info
    from blurbkit.train.provenance import library_versions

    report = {"benchmark": "finetune_bc5chem", "epochs": args.epochs, "lr": 5e-5, "batch_size": 32,
              "machine": machine_info()}
    report["trainer"] = trainer_side(args)
    report["blurbkit"] = blurbkit_side(args)
    report["train_speedup"] = round(report["blurbkit"]["train_examples_per_second"]
                                    / report["trainer"]["train_examples_per_second"], 2)
    report["test_f1_difference"] = round(report["blurbkit"]["test_f1"] - report["trainer"]["test_f1"], 4)
    report["dev_f1_difference"] = round(report["blurbkit"]["dev_f1"] - report["trainer"]["dev_f1"], 4)
    report["machine"]["load_average_end"] = machine_info()["load_average"]
    report["versions"] = {k: v for k, v in library_versions().items() if k in ("torch", "transformers", "blurbkit")}
    write_json(RESULTS / "finetune_bc5chem.json", report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
