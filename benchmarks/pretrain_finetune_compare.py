"""Fine-tune several encoders on BLURB datasets with the same budget and seeds; report mean ± std on test.

Used for two pretraining findings:
  * from scratch vs random init (same size):
      python benchmarks/pretrain_finetune_compare.py --name scratch_vs_random \
        --model pretrained=$RUNS/scratch_tiny --model random=$RUNS/random_tiny \
        --dataset ncbi_disease --dataset bc5chem --seeds 0 1 2 --epochs 3 --lr 1e-4 3e-4 1e-3 3e-3 1e-2 \
        --max-train-examples 1000 --max-eval-examples 300 --max-test-examples 1000
    (several --lr values: each model is scored at the one with its best mean dev score)
  * DDI after drug sub-corpus continual pretraining vs plain MiniLM:
      python benchmarks/pretrain_finetune_compare.py --name ddi_drug_subdomain \
        --model minilm=default --model minilm+drug=$RUNS/minilm_drug --dataset ddi --seeds 0 1 2 ...

Runs the fine-tuning engine (`blurbkit.train.run.run_finetune`, what `blurbkit finetune` runs; a
subprocess per run so that --max-test-examples, which the CLI does not expose, can be passed) and reads
RUN_DIR/metrics.json. A test subsample is seeded by the run seed, so paired runs (same seed, different
model) see the same test examples.
Finished runs are reused. Writes benchmarks/results/pretrain_<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from blurbkit.fileio import write_json, write_text

REPO = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("BLURBKIT_RUNS", "/tmp/blurbkit_pretrain_runs"))
RESULTS = REPO / "benchmarks" / "results"
SHARED_DATA = Path(os.environ.get("BLURBKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def finetune(run: Path, dataset: str, seed: int, lr: float | None, model_dir: str, args: argparse.Namespace,
             env: dict[str, str]) -> None:
    """One fine-tuning run in a subprocess (the engine's own entry point); writes RUN/metrics.json."""
    config = {"dataset": dataset, "out": str(run), "seed": seed, "epochs": args.epochs,
              "batch_size": args.batch_size, "max_eval_examples": args.max_eval_examples,
              "max_test_examples": args.max_test_examples, "max_train_examples": args.max_train_examples,
              "model": None if model_dir == "default" else model_dir, "lr": lr,
              "max_length": args.max_length, "progress": False, "save_model": False, "overwrite": True,
              "precision": "fp32", "threads": args.threads}
    code = ("import json,sys; from pathlib import Path; from blurbkit.train.config import FinetuneConfig; "
            "from blurbkit.train.run import run_finetune; c=json.loads(sys.argv[1]); c['out']=Path(c['out']); "
            "print(json.dumps(run_finetune(FinetuneConfig(**c))['test']['score']))")
    start = time.time()
    print("+ finetune", json.dumps(config), flush=True)
    subprocess.run([sys.executable, "-c", code, json.dumps(config)], check=True, env=env)
    print(f"  {time.time() - start:.0f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--dataset", action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, nargs="+", default=[None],
                        help="one or more learning rates; with several, each model takes the one with the best mean dev score")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-eval-examples", type=int, default=500)
    parser.add_argument("--max-test-examples", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    models = dict(item.split("=", 1) for item in args.model)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if SHARED_DATA.is_dir():  # so the script runs from any directory
        env.setdefault("BLURBKIT_DATA", str(SHARED_DATA))
    rows = []
    for dataset in args.dataset:
        for label, model_dir in models.items():
            by_lr = {}  # lr -> (dev scores, test scores) over the seeds
            for lr in args.lr:
                dev, test = [], []
                for seed in args.seeds:
                    # A single learning rate keeps the run names of earlier single-lr comparisons.
                    suffix = f"__lr{lr:g}" if len(args.lr) > 1 else ""
                    run = RUNS / "finetune" / args.name / f"{dataset}__{label.replace('/', '_')}__s{seed}{suffix}"
                    if not (run / "metrics.json").is_file():
                        finetune(run, dataset, seed, lr, model_dir, args, env)
                    metrics = json.loads((run / "metrics.json").read_text())
                    dev.append(metrics["dev"]["score"])
                    test.append(metrics["test"]["score"])
                by_lr[lr] = (dev, test)
            # Model selection as in the papers: the learning rate with the best mean dev score.
            best = max(by_lr, key=lambda lr: statistics.mean(by_lr[lr][0]))
            scores = by_lr[best][1]
            row = {"dataset": dataset, "model": label, "model_dir": model_dir, "metric": metrics["test"]["metric"],
                   "seeds": args.seeds, "lr": best, "scores": scores, "mean": statistics.mean(scores),
                   "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                   "grid": {f"{lr:g}": {"dev_mean": statistics.mean(d), "test_mean": statistics.mean(t)}
                            for lr, (d, t) in by_lr.items()}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("model", "dataset", "name")}
    write_json(RESULTS / f"pretrain_{args.name}.json", {"settings": settings, "rows": rows})
    lines = [f"| dataset | model | lr (best dev) | test {rows[0]['metric']} (mean ± std over seeds {args.seeds}) | per seed |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['model']} | {r['lr']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | "
              f"{' / '.join(f'{100 * x:.2f}' for x in r['scores'])} |" for r in rows]
    write_text(RESULTS / f"pretrain_{args.name}.md", "\n".join(lines) + "\n\nsettings: " + json.dumps(settings) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
