"""`blurbkit compare MODEL_A MODEL_B`: per dataset, the score difference with a paired-bootstrap 95%
interval, seed-level tests, and the BLURB-score difference (experiments/compare.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blurbkit.cli.argtypes import non_negative_int

# Which common protocol to compare when both models have several: the most complete first.
PREFERENCE = (("protocol", "full"), ("benchmark", "full"), ("benchmark", "quick"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="is the difference between two models real? paired bootstrap "
                                   "intervals per dataset and for the BLURB score, seed-level tests")
    parser.add_argument("model_a", metavar="MODEL_A", help="a model of the store: its directory, name or store label")
    parser.add_argument("model_b", metavar="MODEL_B")
    parser.add_argument("--store", type=Path, action="append", help="results store; repeat to merge (default: runs/results.sqlite)")
    parser.add_argument("--budget", help="compare the runs of this budget (quick, full, ...; default: the most complete "
                        "protocol both have)")
    parser.add_argument("--full-grid", action="store_true", help="the full-protocol runs (study protocol), not the benchmark's")
    parser.add_argument("--data", help="where the runs' test data is (default: each run's own)")
    parser.add_argument("--replicates", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the resampling")
    parser.set_defaults(func=run)


def find_model(query: str, models: list[str], names: dict[str, str]) -> str:
    from blurbkit.errors import BlurbkitError

    path = Path(query)
    exact = [m for m in models if m == query or names[m] == query or (path.exists() and m == str(path.resolve()))]
    if len(exact) == 1:
        return exact[0]
    partial: list[str] = []
    for found in ([m for m in models if query in m], [m for m in models if query.lower() in m.lower()]):
        partial = found
        if len(found) == 1:
            return found[0]
        if found:
            break
    listing = "; ".join(names[m] for m in models) or "none"
    what = "matches several models" if len(exact) + len(partial) > 1 else "is not a model of the store"
    raise BlurbkitError(f"{query!r} {what} (models with benchmark runs: {listing})")


def run(args: argparse.Namespace) -> int:
    from blurbkit.data.load import resolve_data
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.compare import compare, comparison_table
    from blurbkit.experiments.leaderboard import display_names, leaderboard, load_stores

    if args.replicates < 100:
        raise BlurbkitError("--replicates must be at least 100 (a 95% interval needs the tails)")
    if args.data:  # a typo would otherwise leave every comparison unpaired, quietly
        resolve_data(args.data)
    rows = load_stores(args.store or [Path("runs/results.sqlite")])
    entries = leaderboard(rows)
    names = display_names(e.model for e in entries)
    models = list(dict.fromkeys(e.model for e in entries))
    a, b = find_model(args.model_a, models, names), find_model(args.model_b, models, names)
    if a == b:
        raise BlurbkitError("MODEL_A and MODEL_B are the same model")
    study = "protocol" if args.full_grid else None
    options = {}
    for model in (a, b):
        options[model] = {(e.study, e.budget): e for e in entries if e.model == model
                          and (study is None or e.study == study) and (args.budget is None or e.budget == args.budget)}
    common = [k for k in options[a] if k in options[b]]
    if not common:
        raise BlurbkitError(f"{names[a]} and {names[b]} have no benchmark runs of one protocol in common "
                            f"({names[a]}: {', '.join(e.protocol for e in options[a].values()) or 'none'}; "
                            f"{names[b]}: {', '.join(e.protocol for e in options[b].values()) or 'none'})")
    common.sort(key=lambda k: (PREFERENCE.index(k) if k in PREFERENCE else len(PREFERENCE), k))
    chosen = common[0]
    if len(common) > 1:
        others = ", ".join(options[a][k].protocol for k in common[1:])
        print(f"blurbkit: comparing the {options[a][chosen].protocol} runs (also in common: {others}; choose with "
              "--budget / --full-grid)", file=sys.stderr)
    result = compare(options[a][chosen], options[b][chosen], data=args.data, replicates=args.replicates, seed=args.seed)
    print(comparison_table(result, names, args.replicates))
    return 0
