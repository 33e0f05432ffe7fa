"""Relation input x encoding on ChemProt and DDI subsets with the default MiniLM (SPEC §3).

Published (PubMedBERT, full data): original text + [CLS] is far worse than dummification
(ChemProt 50.5 vs 77.2, DDI 37.0 vs 82.4). ChemProt is distributed with masked text only, so
there only the dummified input runs; DDI (rebuilt from the XML corpus) runs all inputs.

Results: benchmarks/results/ablation_relation_<dataset>.{md,csv,json}.
Usage: nice -n 10 .venv/bin/python benchmarks/ablation_relation.py [--seeds 3] [--datasets ddi] [--variants ...]
"""

from __future__ import annotations

import argparse
import sys

from ablation_common import run_study

# Each dataset at the smallest budget at which it learns in the --quick benchmark: 600 examples
# taught ChemProt nothing (all `false`) and 1,600 x 2 epochs taught DDI nothing (F1 1.2); ChemProt
# learns at 2,000 x 2 (F1 41.6), DDI only partly there (24.2) but at 2,400 x 3 (51.9). About 5 and
# 8 minutes a run on one CPU thread.
BUDGET = {"max_train_examples": 2400, "epochs": 3, "batch_size": 16, "lr": 1e-4, "max_length": 128,
          "max_eval_examples": 300, "max_test_examples": 1000}
BUDGETS = {"ddi": BUDGET, "chemprot": {**BUDGET, "max_train_examples": 2000, "epochs": 2}}
VARIANTS = ["dummy+cls", "dummy+mention", "dummy+start", "markers+cls", "markers+mention", "markers+start",
            "original+cls", "original+mention", "original+start"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="chemprot,ddi")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    codes = [run_study("relation", [name], args.variants.split(","), args.seeds, BUDGETS[name], tag=name)
             for name in args.datasets.split(",")]
    sys.exit(max(codes))
