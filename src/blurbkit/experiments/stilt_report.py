"""STILT's tables: the target x intermediate matrix (md, csv) and its heatmap, from the cells
``stilt.collect`` builds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.experiments.stilt import Cell, StiltPlan
from blurbkit.fileio import atomic_write, write_csv
from blurbkit.tasks.registry import get_dataset

# Jeong & Hwang (SPEC §8), mean of 3 runs at full data: model -> (target, intermediate or None for the
# baseline) -> test score as printed. Only the cells the notes give: the baselines and the largest changes.
PUBLISHED: dict[str, dict[tuple[str, str | None], str]] = {
    "BERT-base": {
        ("bc5chem", None): "88.92", ("bc5disease", None): "80.74", ("ncbi_disease", None): "85.33",
        ("bc2gm", None): "80.83", ("jnlpba", None): "77.32", ("ebm_pico", None): "72.15", ("chemprot", None): "71.23",
        ("ddi", None): "77.01", ("gad", None): "78.93", ("pubmedqa", None): "50.6", ("bioasq", None): "61.43",
        ("bioasq", "ddi"): "76.66", ("bioasq", "chemprot"): "75.48", ("pubmedqa", "ddi"): "58.50",
        ("pubmedqa", "chemprot"): "58.30", ("ddi", "chemprot"): "79.03", ("chemprot", "bc2gm"): "69.82",
        ("ddi", "bc2gm"): "74.57",
    },
    "PubMedBERT": {
        ("bc5chem", None): "92.97", ("chemprot", None): "77.28", ("ddi", None): "82.96", ("gad", None): "82.17",
        ("pubmedqa", None): "55.00", ("bioasq", None): "84.29",
        ("bioasq", "ddi"): "92.15", ("pubmedqa", "bioasq"): "65.40", ("pubmedqa", "chemprot"): "62.30",
    },
}
PUBLISHED_NOTE = ("Published rows: Jeong & Hwang's STILT study (mean of 3 runs, full data), only the cells SPEC §8 "
                  "keeps: each target's baseline and the largest gains and losses. A blank cell is one SPEC §8 leaves "
                  "out, not a zero change.")


def published_rows(targets: Sequence[str], sources: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(target, model, cells) for each model with a published cell in this matrix: the cells are the
    baseline, then each intermediate task's 'score (+difference)', '' where the notes give none."""
    rows = []
    for target in targets:
        for model, scores in PUBLISHED.items():
            base = scores.get((target, None))
            cells = [base or ""]
            for source in sources:
                score = scores.get((target, source))
                diff = "" if score is None or base is None else f" ({_difference(score, base)})"
                cells.append("" if score is None else f"{score}{diff}")  # the notes keep no (A, A) cell
            if any(cells):
                rows.append((target, model, cells))
    return rows


def _difference(score: str, base: str) -> str:
    """score - base to the precision of the less precise of the two (50.6 -> 58.50 is +7.9)."""
    places = min(len(value.partition(".")[2]) for value in (score, base))
    return f"{float(score) - float(base):+.{places}f}"


def stilt_table(plan: StiltPlan, cells: dict[tuple[str, str | None], Cell]) -> str:
    """The paper's Tables 2-3: rows = targets, columns = the baseline, then each intermediate task;
    a cell = the target's test score after that intermediate task (mean over seeds) and its
    difference from the baseline."""
    def title(name: str) -> str:
        spec = get_dataset(name)
        return f"{spec.title} ({spec.task.title.lower()})"

    header = ["target \\ intermediate", "none (baseline)", *(get_dataset(s).title for s in plan.sources)]
    lines = [f"| {' | '.join(header)} |", "|---" * len(header) + "|"]
    for target in plan.targets:
        base = cells.get((target, None))
        row = [title(target), f"{base.mean:.2f} ± {base.std:.2f}{_short(base, plan.seeds)}" if base else "—"]
        for source in plan.sources:
            cell = cells.get((target, source))
            if source == target:
                row.append("·")
            elif cell is None:
                row.append("—")
            else:
                diff = "" if cell.diff is None else f" ({cell.diff:+.2f})"
                row.append(f"{cell.mean:.2f}{diff}{_short(cell, plan.seeds)}")
        lines.append(f"| {' | '.join(row)} |")
    published = published_rows(plan.targets, plan.sources)
    for target, model, row in published:
        lines.append(f"| *{get_dataset(target).title}, {model} (published)* | {' | '.join(row)} |")
    lines += ["", f"Cells: the target's test score after fine-tuning on the intermediate task first (mean over "
              f"{plan.seeds} seed(s); each seed's target run starts from that seed's intermediate encoder), and in "
              "brackets the difference from the baseline (no intermediate task). The encoder transfers; the "
              "intermediate task's featurizer and head are dropped and the target's are built new, across task "
              "types and within one. †k: k of the seeds are failed runs, no better than the trivial predictor "
              "(majority class, no entity; docs/ARCHITECTURE.md, Failed runs)."]
    if published:
        lines.append(PUBLISHED_NOTE)
    if plan.budget != "full":
        lines.append(f"BUDGET RUN ({plan.budget}): small training subsets and few epochs on CPU; not comparable to "
                     "the paper's numbers, only its directions.")
    return "\n".join(lines)


def _short(cell: Cell, seeds: int) -> str:
    failed = f" †{cell.failed}" if cell.failed else ""
    return failed + ("" if len(cell.scores) == seeds else f" [n={len(cell.scores)}]")


def stilt_csv(plan: StiltPlan, cells: dict[tuple[str, str | None], Cell]) -> list[list[str]]:
    rows = [["target", "target_task", "intermediate", "intermediate_task", "n", "failed", "mean", "std", "baseline", "diff",
             "seed_scores"]]
    for target in plan.targets:
        for source in [None, *plan.sources]:
            cell = cells.get((target, source))
            if cell is None or source == target:
                continue
            rows.append([target, get_dataset(target).task_type, source or "", get_dataset(source).task_type if source else "",
                         str(len(cell.scores)), str(cell.failed), f"{cell.mean:.4f}", f"{cell.std:.4f}",
                         "" if cell.baseline is None else f"{cell.baseline:.4f}",
                         "" if cell.diff is None else f"{cell.diff:.4f}", " ".join(f"{s:.4f}" for s in cell.scores)])
    return rows


def stilt_heatmap(plan: StiltPlan, cells: dict[tuple[str, str | None], Cell], title: str, paths: Sequence[Path]) -> None:
    """The heatmap of `heatmap_figure` as png/svg files."""
    import matplotlib.pyplot as plt


    fig = heatmap_figure(plan.targets, plan.sources, cells, title)
    for path in paths:
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format=path.suffix.lstrip("."), dpi=130)
    plt.close(fig)


def heatmap_figure(targets: Sequence[str], sources: Sequence[str], cells: dict[tuple[str, str | None], Cell],
                   title: str) -> Any:
    """Differences from the baseline: gain blue, loss orange, saturation = size of the change
    (symmetric scale around 0); each cell also shows the score. Rows = targets, columns = the
    intermediate tasks by dataset title; a matplotlib figure (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm

    diffs = np.full((len(targets), len(sources)), np.nan)
    for i, target in enumerate(targets):
        for j, source in enumerate(sources):
            cell = cells.get((target, source))
            if cell is not None and cell.diff is not None and source != target:
                diffs[i, j] = cell.diff
    largest = float(np.nanmax(np.abs(diffs))) if np.isfinite(diffs).any() else 1.0
    largest = max(largest, 0.5)  # a matrix of tiny changes stays pale instead of saturating
    colours = LinearSegmentedColormap.from_list("loss_gain", ["#d95f02", "#ffffff", "#1f5fa8"])
    colours = colours.with_extremes(bad="#dddddd")
    fig, ax = plt.subplots(figsize=(1.5 + 1.25 * len(sources), 1.2 + 0.65 * len(targets)))
    image = ax.imshow(np.ma.masked_invalid(diffs), cmap=colours, norm=TwoSlopeNorm(0.0, -largest, largest), aspect="auto")
    for i, target in enumerate(targets):
        for j, source in enumerate(sources):
            cell = cells.get((target, source))
            if source == target or cell is None:
                ax.text(j, i, "—", ha="center", va="center", color="#666666")
                continue
            diff = "" if cell.diff is None else f"\n{cell.diff:+.1f}"
            strong = cell.diff is not None and abs(cell.diff) > 0.6 * largest
            ax.text(j, i, f"{cell.mean:.1f}{'†' if cell.failed else ''}{diff}", ha="center", va="center", fontsize=8,
                    color="white" if strong else "black")
    base = {t: cells[(t, None)].mean for t in targets if (t, None) in cells}
    ax.set_yticks(range(len(targets)),
                  [f"{get_dataset(t).title} (base {base[t]:.1f})" if t in base else get_dataset(t).title for t in targets])
    ax.set_xticks(range(len(sources)), [get_dataset(s).title for s in sources], rotation=30, ha="right")
    ax.set_xlabel("intermediate task")
    ax.set_ylabel("target task")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="difference from baseline (points)")
    fig.tight_layout()
    return fig


def write_stilt_report(out_dir: Path, name: str, table: str, plan: StiltPlan,
                       cells: dict[tuple[str, str | None], Cell], title: str) -> list[Path]:

    from blurbkit.fileio import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    with atomic_write(written[0]) as handle:
        handle.write(table + "\n")
    write_csv(written[1], stilt_csv(plan, cells))
    if any(source is not None for _, source in cells):
        pictures = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
        stilt_heatmap(plan, cells, title, pictures)
        written += pictures
    return written
