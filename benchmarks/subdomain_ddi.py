"""Sub-domain adaptation finding (BERT-RE): DDI after continual MLM on the drug sub-corpus vs plain MiniLM.

Both sides are the relation study's dummy+[CLS] cell at the same budget and seeds (the baseline is
shared with benchmarks/ablation_relation.py through the results store), so the only difference is
the encoder. Run benchmarks/pretrain_continual_drug.py first.
Usage: nice -n 10 .venv/bin/python benchmarks/subdomain_ddi.py --model /tmp/blurbkit_pretrain_runs/minilm_drug_s3
Writes benchmarks/results/subdomain_ddi.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys

from ablation_common import RESULTS, RUNS, run_study
from ablation_relation import BUDGETS

BUDGET = BUDGETS["ddi"]


def per_seed(model_label_like: str) -> list[str]:
    """Test scores by seed of this budget's dummy+[CLS] DDI runs of one encoder, from the results store."""
    db = sqlite3.connect(RUNS / "results.sqlite")
    rows = db.execute(
        "SELECT seed, test_score, hyperparameters FROM runs WHERE study = 'relation' AND variant = 'dummy+cls'"
        " AND dataset = 'ddi' AND model LIKE ? ORDER BY seed", (model_label_like,)).fetchall()
    return [f"{100 * score:.2f}" for _, score, hyper in rows
            if all(json.loads(hyper).get(k) == v for k, v in BUDGET.items())]


def read_cell(tag: str) -> dict[str, str]:
    with open(RESULTS / f"ablation_relation_{tag}.csv", encoding="utf-8") as handle:
        return next(csv.DictReader(handle))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="the continually pretrained MiniLM directory")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    sides = {"MiniLM": [], "MiniLM + drug sub-corpus MLM": ["--model", args.model]}
    rows = []
    for label, extra in sides.items():
        tag = "ddi_" + ("drug" if extra else "base")
        code = run_study("relation", ["ddi"], ["dummy+cls"], args.seeds, BUDGET, extra=extra, tag=tag)
        if code:
            sys.exit(code)
        cell = read_cell(tag)
        seeds = per_seed(args.model if extra else "default%")
        rows.append(f"| {label} | {float(cell['mean']):.2f} ± {float(cell['std']):.2f} | {' / '.join(seeds)} |")
    lines = ["| encoder | DDI test micro F1 (mean ± std) | seed 0 / 1 / 2 ... |", "|---|---|---|", *rows, "",
             "Budget (both sides, same seeds): " + json.dumps(BUDGET), f"Adapted model: {args.model}"]
    (RESULTS / "subdomain_ddi.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
