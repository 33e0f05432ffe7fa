"""Sub-domain adaptation finding (BERT-RE): a relation task after continual MLM on its sub-corpus vs plain MiniLM.

DDI after the drug sub-corpus, ChemProt after the chemical+protein sub-corpus. Both sides are the
relation study's dummy+[CLS] cell at the dataset's budget and the same seeds (the baseline is shared
with benchmarks/ablation_relation.py through the results store), so the only difference is the
encoder. Run benchmarks/pretrain_continual.py --topic drug|chemical+protein first.
Usage: nice -n 10 .venv/bin/python benchmarks/subdomain_relation.py --dataset ddi --model $BLURBKIT_RUNS/minilm_drug_4000 [--seeds 5] [--workers 2]
Writes benchmarks/results/subdomain_<dataset>[_<name>].md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ablation_common import RESULTS, RUNS, budget_label, portable_path, run_study
from ablation_relation import BUDGETS

from blurbkit.experiments.benchmark import model_label
from blurbkit.fileio import write_text
from blurbkit.store.results import ResultsStore

# dataset -> (its sub-domain, the tag of the adapted side's result files, the name in the table)
SUBDOMAINS = {"ddi": ("drug", "drug", "DDI"), "chemprot": ("chemical+protein", "chemical_protein", "ChemProt")}


def per_seed(dataset: str, model: str | None) -> list[str]:
    """Test scores by seed of this budget's dummy+[CLS] runs of one encoder on `dataset`, from the results store."""
    budget = BUDGETS[dataset]
    store = ResultsStore(RUNS / "results.sqlite")
    rows = [r for r in store.rows(study="relation", model=model_label(model), budget=budget_label(budget))
            if r["variant"] == "dummy+cls" and r["dataset"] == dataset
            and all(json.loads(r["hyperparameters"]).get(k) == v for k, v in budget.items())]
    store.close()
    return [f"{100 * r['test_score']:.2f}" for r in sorted(rows, key=lambda r: r["seed"])]


def read_cell(tag: str) -> dict[str, str]:
    with open(RESULTS / f"ablation_relation_{tag}.csv", encoding="utf-8") as handle:
        return next(csv.DictReader(handle))


def pretraining_line(path: Path) -> str:
    """One line on how the adapted model was pretrained, from pretrain_continual.py's JSON."""
    info = json.loads(path.read_text(encoding="utf-8"))
    corpus = next(v for k, v in info.items() if k.endswith("_corpus"))
    loss, settings = info["loss"], info["settings"]
    return (f"Continual pretraining ({path.name}): {info['steps']} steps of masked LM, batch {settings['batch_size']} x 128 tokens, "
            f"lr {settings['lr']:g}, {loss['tokens'] / 1e6:.2f} M tokens, {info['seconds']:.0f} s on {settings['threads']} thread(s) "
            f"({info['tokens_per_s']:.0f} tokens/s), MLM loss {loss['first_loss']:.2f} -> {loss['last_loss']:.2f} "
            f"(min {loss['min_loss']:.2f}); sub-corpus {corpus['documents_kept']:,} of {corpus['documents_read']:,} documents, "
            f"{corpus['words_kept'] / 1e6:.2f} M words, {corpus['terms']:,} terms.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=sorted(SUBDOMAINS), default="ddi")
    parser.add_argument("--model", required=True, help="the continually pretrained MiniLM directory")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pretrain-json", type=Path, help="pretrain_continual.py's result JSON, summarised under the table")
    parser.add_argument("--name", default="",
                        help="suffix of the result files (subdomain_<dataset>_<name>.md), so a longer pretraining sits beside the first")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs at once, one thread each (blurbkit's local executor); 1: one after another in this process")
    args = parser.parse_args()
    pool = [] if args.workers == 1 else ["--executor", "local", "--workers", str(args.workers), "--threads-per-run", "1"]
    topic, short, name = SUBDOMAINS[args.dataset]
    budget = BUDGETS[args.dataset]
    sides = {"MiniLM": [], f"MiniLM + {topic} sub-corpus MLM": ["--model", args.model]}
    rows = []
    for label, extra in sides.items():
        tag = f"{args.dataset}_" + (short if extra else "base") + (f"_{args.name}" if args.name else "")
        code = run_study("relation", [args.dataset], ["dummy+cls"], args.seeds, budget, extra=[*extra, *pool], tag=tag)
        if code:
            sys.exit(code)
        cell = read_cell(tag)
        seeds = per_seed(args.dataset, args.model if extra else None)
        rows.append(f"| {label} | {float(cell['mean']):.2f} ± {float(cell['std']):.2f} | {' / '.join(seeds)} |")
    lines = [f"| encoder | {name} test micro F1 (mean ± std) | seed 0 / 1 / 2 ... |", "|---|---|---|", *rows, "",
             "Budget (both sides, same seeds): " + json.dumps(budget),
             "Adapted model: " + portable_path(args.model)]
    if args.pretrain_json:
        lines.append(pretraining_line(args.pretrain_json))
    write_text(RESULTS / f"subdomain_{args.dataset}{'_' + args.name if args.name else ''}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
