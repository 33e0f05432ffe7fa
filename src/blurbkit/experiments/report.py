"""Write comparison results as a Markdown table, a CSV and a bar plot (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blurbkit.fileio import atomic_write, write_csv


def write_report(out_dir: Path, name: str, table: str, per_dataset: dict[str, dict[str, Any]],
                 failed: dict[str, int] | None = None) -> list[Path]:
    """NAME.md (the table), NAME.csv (one line per dataset: mean, std, finished runs, failed runs;
    a dataset whose every run failed has a line too) and NAME.png (the means beside PubMedBERT's);
    returns the files written."""
    failed = failed or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / f"{name}.md") as handle:
        handle.write(table + "\n")
    rows: list[list[Any]] = [["dataset", "mean", "std", "n", "wall_seconds", "failed"]]
    for dataset, cell in per_dataset.items():
        rows.append([dataset, f"{cell['mean']:.4f}", f"{cell['std']:.4f}", cell["n"], f"{cell['wall_seconds']:.1f}",
                         failed.get(dataset, 0)])
    for dataset in (d for d in failed if d not in per_dataset):
        rows.append([dataset, "", "", 0, "", failed[dataset]])
    write_csv(out_dir / f"{name}.csv", rows)
    written = [out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    if per_dataset:
        plot_scores(out_dir / f"{name}.png", per_dataset, name)
        written.append(out_dir / f"{name}.png")
    else:  # a plot of an earlier run of this table would be read as this one's
        (out_dir / f"{name}.png").unlink(missing_ok=True)
    return written


def plot_scores(path: Path, per_dataset: dict[str, dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from blurbkit.experiments.benchmark import reference_results

    names = list(per_dataset)
    reference = reference_results()["PubMedBERT"]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 4))
    x = range(len(names))
    # Rows that are not BLURB datasets (e.g. ablation cells "chemprot dummy+cls") have no reference bar.
    has_reference = any(n in reference for n in names)
    shift = 0.2 if has_reference else 0.0
    ax.bar([i - shift for i in x], [per_dataset[n]["mean"] for n in names], 0.4,
           yerr=[per_dataset[n]["std"] for n in names], label="this run", capsize=3)
    if has_reference:
        ax.bar([i + shift for i in x], [reference.get(n, 0) for n in names], 0.4, label="PubMedBERT (paper)")
    ax.set_xticks(list(x), names, rotation=45, ha="right")
    ax.set_ylabel("test score (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
