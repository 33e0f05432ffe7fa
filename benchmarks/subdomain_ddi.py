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
import sys

from ablation_common import RESULTS, RUNS, run_study
from ablation_relation import BUDGETS

from blurbkit.experiments.benchmark import model_label
from blurbkit.store.results import ResultsStore

BUDGET = BUDGETS["ddi"]


def per_seed(model: str | None) -> list[str]:
    """Test scores by seed of this budget's dummy+[CLS] DDI runs of one encoder, from the results store."""
    store = ResultsStore(RUNS / "results.sqlite")
    rows = [r for r in store.rows(study="relation", model=model_label(model), budget=f"test{BUDGET['max_test_examples']}")
            if r["variant"] == "dummy+cls" and r["dataset"] == "ddi"
            and all(json.loads(r["hyperparameters"]).get(k) == v for k, v in BUDGET.items())]
    store.close()
    return [f"{100 * r['test_score']:.2f}" for r in sorted(rows, key=lambda r: r["seed"])]


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
        seeds = per_seed(args.model if extra else None)
        rows.append(f"| {label} | {float(cell['mean']):.2f} ± {float(cell['std']):.2f} | {' / '.join(seeds)} |")
    lines = ["| encoder | DDI test micro F1 (mean ± std) | seed 0 / 1 / 2 ... |", "|---|---|---|", *rows, "",
             "Budget (both sides, same seeds): " + json.dumps(BUDGET), f"Adapted model: {args.model}"]
    (RESULTS / "subdomain_ddi.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
