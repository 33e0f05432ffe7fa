"""SLL heads (summaries of the last layer) vs [CLS] only on GAD, ChemProt and DDI subsets (SPEC §3).

Each dataset runs at the smallest budget at which it learns: ChemProt and DDI at the relation
study's (2,000 x 2 and 2,400 x 3), GAD at 1,600 x 2. Results: benchmarks/results/ablation_sll_<dataset>.{md,csv,json}.
Usage: nice -n 10 .venv/bin/python benchmarks/ablation_sll.py [--seeds 3] [--datasets gad] [--variants ...]
"""

from __future__ import annotations

import argparse
import sys

from ablation_common import run_study
from ablation_relation import BUDGETS as RELATION_BUDGETS

BUDGETS = {"gad": {**RELATION_BUDGETS["ddi"], "max_train_examples": 1600, "epochs": 2}, **RELATION_BUDGETS}
VARIANTS = ["cls", "cls+attention", "attention", "cls+lstm", "lstm", "cls+bilstm", "bilstm"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="gad,chemprot,ddi")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--save-models", action="store_true", help="keep weights for `blurbkit analyze attention`")
    args = parser.parse_args()
    extra = ["--save-models"] if args.save_models else []
    codes = [run_study("sll", [name], args.variants.split(","), args.seeds, BUDGETS[name], extra=extra, tag=name)
             for name in args.datasets.split(",")]
    sys.exit(max(codes))
