"""SLL heads (summaries of the last layer) vs [CLS] only on GAD, ChemProt and DDI subsets (SPEC §3).

Usage: nice -n 10 .venv/bin/python benchmarks/ablation_sll.py [--seeds 3] [--datasets gad] [--variants ...]
"""

from __future__ import annotations

import argparse
import sys

from ablation_common import run_study
from ablation_relation import BUDGET

VARIANTS = ["cls", "cls+attention", "attention", "cls+lstm", "lstm", "cls+bilstm", "bilstm"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="gad,chemprot,ddi")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--save-models", action="store_true", help="keep weights for `blurbkit analyze attention`")
    args = parser.parse_args()
    extra = ["--save-models"] if args.save_models else []
    sys.exit(run_study("sll", args.datasets.split(","), args.variants.split(","), args.seeds, BUDGET, extra=extra))
