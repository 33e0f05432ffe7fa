"""Contrast two STILT matrices (`blurbkit stilt --matrix ... --report NAME` CSVs) of two encoders
run at the same budget: does intermediate-task transfer help the general-domain model more than the
domain-adapted one (the STILT paper's direction)?

    python benchmarks/stilt_contrast.py general=runs/stilt_minilm_quick.csv \
        adapted=runs/stilt_minilm_chemprot_quick.csv --out benchmarks/results/stilt_contrast.md

Per encoder: transfer cells with a gain / a loss, the mean change over all cells, and the same over
the cells whose target learns at all (a baseline above its trivial predictor in some seed of either
encoder, so both encoders are summed over the same cells; targets where every run failed show +0.00
everywhere and would only dilute the mean). Then per target, the
baseline and the mean change of each encoder side by side.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def read(path: Path) -> tuple[dict[str, dict], dict[tuple[str, str], dict]]:
    """(baselines by target, transfer cells by (target, intermediate)) from a matrix CSV."""
    baselines, cells = {}, {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["intermediate"]:
                cells[(row["target"], row["intermediate"])] = row
            else:
                baselines[row["target"]] = row
    return baselines, cells


def learns(baseline: dict) -> bool:
    """The target's baseline is not a failed run in every seed."""
    return int(baseline["failed"]) < int(baseline["n"])


def summary(name: str, cells: dict, live_targets: set[str]) -> str:
    diffs = [float(row["diff"]) for row in cells.values()]
    live = [float(row["diff"]) for (target, _), row in cells.items() if target in live_targets]
    gains, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    live_gains = sum(d > 0 for d in live)
    return (f"| {name} | {len(diffs)} | {gains} / {losses} | {statistics.mean(diffs):+.2f} | "
            f"{live_gains} of {len(live)} | {statistics.mean(live):+.2f} |" if live else
            f"| {name} | {len(diffs)} | {gains} / {losses} | {statistics.mean(diffs):+.2f} | 0 of 0 | — |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("matrices", nargs=2, metavar="NAME=CSV", help="two matrices, e.g. general=a.csv adapted=b.csv")
    parser.add_argument("--out", type=Path, help="write the markdown here too")
    args = parser.parse_args(argv)
    loaded = []
    for spec in args.matrices:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            print(f"stilt_contrast: {spec}: expected NAME=CSV with an existing file", file=sys.stderr)
            return 2
        loaded.append((name, *read(Path(path))))
    (first, base_a, cells_a), (second, base_b, cells_b) = loaded
    if set(cells_a) != set(cells_b):
        print("stilt_contrast: the two matrices do not cover the same (target, intermediate) pairs", file=sys.stderr)
        return 2
    live_targets = {t for t in base_a if learns(base_a[t]) or learns(base_b[t])}
    lines = ["| encoder | transfer cells | gains / losses | mean change | gains where the target learns | "
             "mean change there |", "|---|---|---|---|---|---|",
             summary(first, cells_a, live_targets), summary(second, cells_b, live_targets), "",
             f"| target | baseline {first} | baseline {second} | mean change {first} | mean change {second} | "
             f"cells where {first} gains more |", "|---|---|---|---|---|---|"]
    for target in sorted(base_a):
        keys = [key for key in cells_a if key[0] == target]
        mean_a = statistics.mean(float(cells_a[k]["diff"]) for k in keys)
        mean_b = statistics.mean(float(cells_b[k]["diff"]) for k in keys)
        more = sum(float(cells_a[k]["diff"]) > float(cells_b[k]["diff"]) for k in keys)

        def base(row: dict) -> str:
            failed = f" †{row['failed']}" if int(row["failed"]) else ""
            return f"{float(row['mean']):.2f} ± {float(row['std']):.2f}{failed}"

        lines.append(f"| {target} | {base(base_a[target])} | {base(base_b[target])} | {mean_a:+.2f} | "
                     f"{mean_b:+.2f} | {more} of {len(keys)} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
