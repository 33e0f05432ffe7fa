"""Sub-domain adaptation: continue MLM pretraining of the default MiniLM on a topic's sub-corpus.

Topics (BERT-RE's sub-domains): `drug` (for DDI) and `chemical+protein` (for ChemProt).
Steps (each skipped when its output exists): `corpus build` of ../shared/data/pubmed_text (test splits
dropped) -> `corpus select --topic TOPIC` -> `blurbkit pretrain --init default` for a fixed step
budget -> loss plot and benchmarks/results/pretrain_continual_<tag>{.json,_loss.png} (tag drug / chemprot, or
--result-tag).
The fine-tuning comparison is then benchmarks/subdomain_relation.py --dataset ddi|chemprot --model $RUNS/NAME.
Usage: python benchmarks/pretrain_continual.py [--topic drug] [--max-steps 200] [--max-minutes 30] [--threads 1] [--name minilm_drug]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_common import cpu_class  # noqa: E402
from pretrain_from_scratch import DATA, RESULTS, RUNS, plot_loss  # noqa: E402

from blurbkit.fileio import write_json

# topic -> tag of the result files and the sub-corpus (named after the BLURB task it is for)
TOPICS = {"drug": "drug", "chemical+protein": "chemprot"}


def blurbkit(*args: str) -> None:
    cmd = [sys.executable, "-m", "blurbkit", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", choices=sorted(TOPICS), default="drug")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-minutes", type=float, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default=None, help="output directory under $BLURBKIT_RUNS (default minilm_<tag>)")
    parser.add_argument("--result-tag", help="name the result files pretrain_continual_TAG.* (default: the topic's tag), "
                        "so a longer run sits beside the first")
    args = parser.parse_args()
    tag = TOPICS[args.topic]
    args.name = args.name or f"minilm_{tag}"
    corpus = RUNS / "pubmed.jsonl.gz"
    sub = RUNS / f"{tag}.jsonl.gz"
    out = RUNS / args.name
    RUNS.mkdir(parents=True, exist_ok=True)
    if not corpus.is_file():
        blurbkit("corpus", "build", str(DATA / "pubmed_text"), "--out", str(corpus), "--data", str(DATA))
    if not sub.is_file():
        blurbkit("corpus", "select", "--corpus", str(corpus), "--topic", args.topic, "--out", str(sub))
    if not (out / "model.safetensors").is_file():
        blurbkit("pretrain", "--init", "default", "--corpus", str(sub), "--out", str(out), "--max-steps", str(args.max_steps),
                 "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--max-length", "128", "--save-every", "50",
                 "--log-every", "5", "--threads", str(args.threads), "--max-minutes", str(args.max_minutes),
                 "--cache-dir", str(RUNS / f"{tag}_cache"))  # tokenised once per sub-corpus, shared by runs
    stem = f"pretrain_continual_{args.result_tag or tag}"
    stats = plot_loss(out / "train_log.jsonl", RESULTS / f"{stem}_loss.png",
                      f"continual MLM of MiniLM on the {args.topic} sub-corpus")
    select = json.loads(Path(str(sub) + ".report.json").read_text())
    summary = json.loads((out / "pretrain_summary.json").read_text())
    result = {f"{tag}_corpus": {k: select[k] for k in ("documents_read", "documents_kept", "words_kept", "terms")},
              # the whole run's training time and tokens (a resumed run's log carries them across its segments)
              "loss": stats, "steps": summary["steps"], "seconds": stats["elapsed_s"],
              "tokens_per_s": stats["tokens"] / max(stats["elapsed_s"], 1e-9),
              "model_dir": f"$BLURBKIT_RUNS/{args.name}" if "BLURBKIT_RUNS" in os.environ else str(out), "settings": vars(args), **cpu_class()}
    write_json(RESULTS / f"{stem}.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
