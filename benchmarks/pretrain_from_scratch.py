"""A small in-domain BERT pretrained here from scratch on ../shared/data/pubmed_text with its own vocabulary.

Steps (each skipped when its output exists): corpus build -> vocab build (30k, uncased) ->
`blurbkit pretrain --from-scratch PRESET` under a wall-time budget -> loss-curve plot, and a
randomly initialised model of the same size (the baseline for pretrain_finetune_compare.py).

Usage: python benchmarks/pretrain_from_scratch.py [--preset mini] [--max-steps 3000] [--max-minutes 55] [--threads 1]
Big files go to $BLURBKIT_RUNS (default /tmp/blurbkit_pretrain_runs); small results to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from blurbkit.fileio import atomic_dir, atomic_write, write_json

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BLURBKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
RUNS = Path(os.environ.get("BLURBKIT_RUNS", "/tmp/blurbkit_pretrain_runs"))
RESULTS = REPO / "benchmarks" / "results"


def blurbkit(*args: str) -> None:
    cmd = [sys.executable, "-m", "blurbkit", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def plot_loss(log_path: Path, png: Path, title: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    steps = [e["step"] for e in log]
    loss = [e["mlm_loss"] for e in log]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, loss)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("MLM loss (masked tokens, cross-entropy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(png, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    return {"first_loss": loss[0], "last_loss": loss[-1], "min_loss": min(loss), "steps": steps[-1],
            "tokens": log[-1]["tokens"], "elapsed_s": log[-1]["elapsed_s"], "mean_tokens_per_s": sum(e["tokens_per_s"] for e in log[1:]) / max(1, len(log) - 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--max-steps", type=int, default=900)
    parser.add_argument("--max-minutes", type=float, default=33)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    corpus = RUNS / "pubmed.jsonl.gz"
    vocab = RUNS / "pubmed_vocab"
    model = RUNS / f"scratch_{args.preset}"
    if not corpus.is_file():
        blurbkit("corpus", "build", str(DATA / "pubmed_text"), "--out", str(corpus), "--data", str(DATA))
    if not (vocab / "tokenizer.json").is_file():
        blurbkit("vocab", "build", "--corpus", str(corpus), "--size", "30000", "--out", str(vocab))
    if not (model / "pretrain_summary.json").is_file():  # written last: the folder is complete (re-run resumes)
        blurbkit("pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), "--from-scratch", args.preset,
                 "--out", str(model), "--max-steps", str(args.max_steps), "--max-minutes", str(args.max_minutes),
                 "--lr", str(args.lr), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                 "--save-every", "100", "--log-every", "10", "--threads", str(args.threads), "--cache-dir", str(RUNS / "pubmed_cache"))
    stats = plot_loss(model / "train_log.jsonl", RESULTS / f"pretrain_from_scratch_{args.preset}_loss.png",
                      f"from-scratch MLM, preset {args.preset}, PubMed vocab")
    # The same architecture, randomly initialised: the baseline the fine-tuning comparison needs.
    random_dir = RUNS / f"random_{args.preset}"
    if not (random_dir / "model.safetensors").is_file():
        import torch
        from transformers import AutoConfig, AutoTokenizer, BertForMaskedLM

        torch.manual_seed(0)
        with atomic_dir(random_dir) as tmp:  # whole or not at all: the check above must mean complete
            BertForMaskedLM(AutoConfig.from_pretrained(str(model))).save_pretrained(str(tmp), safe_serialization=True)
            AutoTokenizer.from_pretrained(str(model)).save_pretrained(str(tmp))
    summary = json.loads((model / "pretrain_summary.json").read_text())
    result = {"preset": args.preset, "model_dir": str(model), "random_dir": str(random_dir), "loss": stats,
              "steps": summary["steps"], "stopped": summary["stopped"], "seconds": summary["seconds"],
              "tokens_per_s": summary["tokens_per_s"], "corpus_tokens": summary["corpus_tokens"]}
    write_json(RESULTS / f"pretrain_from_scratch_{args.preset}.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
