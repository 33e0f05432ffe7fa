"""Plot the speed ratios of one session's `blurbkit bench speed` / `bench inference` results.

    python benchmarks/plot_speed.py --suffix _epyc_s5   # -> benchmarks/results/speed_epyc_s5.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from blurbkit.fileio import atomic_write

RESULTS = Path(__file__).parent / "results"


def ratios(suffix: str) -> list[tuple[str, float, float]]:
    """(label, ratio, target) for every measured comparison of that session's files."""
    rows = []
    for dataset in ("bc5chem", "chemprot"):
        result = json.loads((RESULTS / f"speed_{dataset}{suffix}.json").read_text())
        rows.append((f"{dataset} train", result["train_speedup"], 4.0))
        rows.append((f"{dataset} eval", result["eval_speedup"], 5.0))
    runs = json.loads((RESULTS / f"speed_inference_bc5chem{suffix}.json").read_text())
    runs = runs.get("runs", [runs])
    rows.append((f"raw-text inference\n(median of {len(runs)})", statistics.median(r["speedup"] for r in runs), 5.0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suffix", default="_epyc_s5")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ratios(args.suffix)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(rows)), [r[1] for r in rows], color="#3b75af")
    for i, (_, ratio, target) in enumerate(rows):
        ax.hlines(target, i - 0.4, i + 0.4, colors="#c44e52", linestyles="--")
        ax.annotate(f"{ratio:.2f}×", (i, ratio), ha="center", va="bottom")
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylabel("blurbkit / Hugging Face (examples/s)")
    ax.set_title(f"blurbkit vs Trainer / pipeline, default MiniLM, 2-core CPU ({args.suffix.strip('_')}); dashed: target")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    out = RESULTS / f"speed{args.suffix}.png"
    with atomic_write(out, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    print(out)


if __name__ == "__main__":
    main()
