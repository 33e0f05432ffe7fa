"""Sub-domain adaptation: continue MLM pretraining of the default MiniLM on the drug sub-corpus.

Steps (each skipped when its output exists): `corpus select --topic drug` on the clean PubMed corpus ->
`blurbkit pretrain --init default` for a fixed step budget -> loss plot. The DDI comparison is then
    python benchmarks/pretrain_finetune_compare.py --name ddi_drug_subdomain \
        --model minilm=default --model minilm+drug=$RUNS/minilm_drug --dataset ddi ...
Usage: python benchmarks/pretrain_continual_drug.py [--max-steps 200] [--max-minutes 30] [--threads 1] [--name minilm_drug]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_from_scratch import RESULTS, RUNS, plot_loss  # noqa: E402


def blurbkit(*args: str) -> None:
    cmd = [sys.executable, "-m", "blurbkit", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-minutes", type=float, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="minilm_drug", help="output directory under $BLURBKIT_RUNS")
    args = parser.parse_args()
    corpus = RUNS / "pubmed.jsonl.gz"
    drug = RUNS / "drug.jsonl.gz"
    out = RUNS / args.name
    if not corpus.is_file():
        raise SystemExit(f"run benchmarks/pretrain_from_scratch.py first (needs {corpus})")
    if not drug.is_file():
        blurbkit("corpus", "select", "--corpus", str(corpus), "--topic", "drug", "--out", str(drug))
    if not (out / "model.safetensors").is_file():
        blurbkit("pretrain", "--init", "default", "--corpus", str(drug), "--out", str(out), "--max-steps", str(args.max_steps),
                 "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--max-length", "128", "--save-every", "50",
                 "--log-every", "5", "--threads", str(args.threads), "--max-minutes", str(args.max_minutes))
    stats = plot_loss(out / "train_log.jsonl", RESULTS / "pretrain_continual_drug_loss.png",
                      "continual MLM of MiniLM on the drug sub-corpus")
    select = json.loads(Path(str(drug) + ".report.json").read_text())
    summary = json.loads((out / "pretrain_summary.json").read_text())
    result = {"drug_corpus": {k: select[k] for k in ("documents_read", "documents_kept", "words_kept", "terms")},
              "loss": stats, "steps": summary["steps"], "seconds": summary["seconds"], "tokens_per_s": summary["tokens_per_s"],
              "model_dir": str(out), "settings": vars(args)}
    (RESULTS / "pretrain_continual_drug.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
