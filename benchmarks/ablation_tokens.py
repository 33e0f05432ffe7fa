"""NER tagging schemes (BIO / BIOUL / IO) and token classification layers (linear / BiLSTM / CRF /
BiLSTM-CRF) on two NER datasets with the default MiniLM (SPEC §3).

Usage: nice -n 10 .venv/bin/python benchmarks/ablation_tokens.py --study tagging|heads [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys

from ablation_common import run_study

BUDGET = {"max_train_examples": 600, "epochs": 3, "batch_size": 16, "lr": 1e-4, "max_length": 128,
          "max_eval_examples": 200, "max_test_examples": 1000}
VARIANTS = {"tagging": ["bio", "bioul", "io"], "heads": ["linear", "bilstm", "crf", "bilstm+crf"]}

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="ncbi_disease,bc5chem")
    parser.add_argument("--variants")
    args = parser.parse_args()
    variants = args.variants.split(",") if args.variants else VARIANTS[args.study]
    sys.exit(run_study(args.study, args.datasets.split(","), variants, args.seeds, BUDGET))
