"""k-fold cross-validation over a dataset distributed as folds (AIMed PPI, as the BERT-RE paper
reports it): fold k is test, one run per fold through the Benchmark runner and the results store
(resumable: stored folds are skipped, a killed fold continues from its checkpoint), then P / R / F1
per fold and their mean ± sample std as md, csv and a plot.

The split of fold k is the reader's: test = fold k, dev = fold k+1 (mod K) for model selection,
train = the other K-2 folds. The paper trains on all K-1 other folds without a dev set; every
table says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.data.load import load_split
from blurbkit.data.readers.base import ReadOptions
from blurbkit.errors import BlurbkitError
from blurbkit.experiments.benchmark import Benchmark
from blurbkit.experiments.run_records import run_key
from blurbkit.fileio import atomic_write, write_csv
from blurbkit.metrics.seeds import mean_std
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig

STUDY = "cv"

# BERT-RE paper (SPEC §8, PPI column, F1 by 10-fold CV): featurizer -> {model: F1}.
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "aimed": {
        "cls": {"BioBERT": 81.0, "PubMedBERT": 82.1},
        "sll_attention": {"BioBERT": 82.5, "PubMedBERT": 83.1},
        "sll_attention_nocls": {"BioBERT": 82.8},
        "sll_lstm": {"BioBERT": 82.0},
        "sll_bilstm": {"BioBERT": 81.4},
    }
}


def variant_name(config: FinetuneConfig) -> str:
    """The model choices of the runs, as the table and the store name them ('default' = the task's parts)."""
    parts = [f"{kind}={value}" for kind, value in (("transform", config.transform), ("featurizer", config.featurizer),
                                                    ("head", config.head)) if value]
    return ",".join(parts) or "default"


def check_folds(folds: int, available: int) -> None:
    if folds < 2:
        raise BlurbkitError(f"--folds must be at least 2 (got {folds})")
    if folds > available:
        raise BlurbkitError(f"--folds {folds}: the dataset has {available} folds")


def cv_grid(bases: Sequence[FinetuneConfig], folds: int) -> list[tuple[str, FinetuneConfig]]:
    """One run per fold 0..folds-1 and base config, fold-major: after fold k, every variant has its
    first k+1 folds, so an interrupted comparison is still paired."""
    names = [variant_name(base) for base in bases]
    if len(set(names)) != len(names):
        raise BlurbkitError(f"the compared variants repeat: {', '.join(names)}")
    return [(name, base.replace(fold=k)) for k in range(folds) for name, base in zip(names, bases, strict=True)]


def compare_table(dataset: str, results: dict[str, Sequence[dict[str, Any]]], budget: str) -> str:
    """Variants side by side: P / R / F1 mean ± std over their folds, and the per-fold F1 difference
    to the first variant on the folds both finished (paired)."""
    names = list(results)
    first = {r["fold"]: r["f1"] for r in results[names[0]] if r["status"] == "ok" and r["f1"] is not None}
    lines = ["| variant | folds | P | R | F1 | F1 − first variant, paired over folds |", "|---|---|---|---|---|---|"]
    for name in names:
        ok = [r for r in results[name] if r["status"] == "ok" and r["f1"] is not None]
        if not ok:
            lines.append(f"| {name} | 0 | — | — | — | — |")
            continue
        cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in (mean_std([r[k] for r in ok]) for k in ("precision", "recall", "f1")))
        diffs = [r["f1"] - first[r["fold"]] for r in ok if r["fold"] in first]
        paired = "—" if name == names[0] or not diffs else f"{mean_std(diffs)[0]:+.2f} ± {mean_std(diffs)[1]:.2f} (n={len(diffs)})"
        lines.append(f"| {name} | {len(ok)} | {cells} | {paired} |")
    lines += ["", f"{get_dataset(dataset).title} cross-validation, test P / R / F1 (%), mean ± sample std over folds."]
    if budget != "full":
        lines.append(f"BUDGET RUN ({budget}): training subsample and few epochs on a CPU; compare directions, not values.")
    return "\n".join(lines)


def fold_coverage(dataset: str, data: str | None, folds: int) -> dict[str, int]:
    """Test ids over the folds: how many, and how many appear in more than one fold (must be 0)."""
    seen: dict[str, int] = {}
    repeated = 0
    for k in range(folds):
        for record in load_split(dataset, "test", data, ReadOptions(fold=k)):
            repeated += record["id"] in seen
            seen[record["id"]] = k
    return {"instances": len(seen), "repeated": repeated}


def fold_results(bench: Benchmark, grid: Sequence[tuple[str, FinetuneConfig]], label: str, budget: str) -> list[dict[str, Any]]:
    """Per fold (in fold order): status, test P / R / F1 (%), test instances and gold positives."""
    folds = {run_key(STUDY, variant, config, label, budget).digest(): config.fold for variant, config in grid}
    return sorted((fold_row(row, folds[row["run_key"]]) for row in bench.rows_for(grid, label, budget)),
                  key=lambda r: r["fold"])


def fold_row(row: dict[str, Any], fold: int | None = None) -> dict[str, Any]:
    """One stored fold run as the tables read it (fold: from the run's settings unless given)."""
    test = json.loads(row["test_metrics"] or "{}")
    return {
        "fold": json.loads(row["hyperparameters"]).get("fold", 0) if fold is None else fold,
        "status": row.get("status", "ok"),
        "precision": 100 * test["precision"] if "precision" in test else None,
        "recall": 100 * test["recall"] if "recall" in test else None,
        "f1": 100 * row["test_score"] if row["test_score"] is not None else None,
        "n": test.get("n"),
        "positives": test.get("n_gold"),
        "failed": bool(test.get("failed")),
        "wall_seconds": row["wall_seconds"],
    }


PARTS = ("transform", "featurizer", "head")  # what variant_name names: the compared model choices


def shared_setting(row: dict[str, Any]) -> dict[str, Any]:
    """A stored run's settings without the fold and the compared parts: runs with the same shared
    setting are the folds of one cross-validation, comparable across variants."""
    return {k: v for k, v in json.loads(row["hyperparameters"]).items() if k != "fold" and k not in PARTS}


def paired_folds(first: dict[int, float], other: dict[int, float]) -> dict[str, Any]:
    """F1 of `other` − `first` on the folds both have: mean, sample std, n, and the paired t-test and
    Wilcoxon signed-rank p (None where undefined: fewer than 2 folds, or every difference 0)."""
    import warnings

    from scipy import stats

    folds = sorted(set(first) & set(other))
    diffs = [other[k] - first[k] for k in folds]
    out: dict[str, Any] = {"folds": folds, "diffs": diffs, "n": len(diffs), "mean": None, "std": None,
                           "t_p": None, "wilcoxon_p": None}
    if not diffs:
        return out
    out["mean"], out["std"] = mean_std(diffs)
    if len(diffs) > 1 and any(d != 0 for d in diffs):
        with warnings.catch_warnings():  # identical differences: scipy warns, t is undefined (None below)
            warnings.simplefilter("ignore", RuntimeWarning)
            t_p = stats.ttest_rel([other[k] for k in folds], [first[k] for k in folds]).pvalue
            out["t_p"] = None if t_p != t_p else float(t_p)
            out["wilcoxon_p"] = float(stats.wilcoxon(diffs).pvalue)
    return out


def cv_table(dataset: str, variant: str, featurizer: str | None, per_fold: Sequence[dict[str, Any]], folds: int,
             available: int, budget: str, coverage: dict[str, int] | None = None) -> str:
    spec = get_dataset(dataset)
    lines = ["| fold | test instances | gold positives | P | R | F1 |", "|---|---|---|---|---|---|"]
    for r in per_fold:
        if r["status"] != "ok" or r["f1"] is None:
            lines.append(f"| {r['fold']} | — | — | — | — | — (run failed) |")
            continue
        mark = " (failed run)" if r["failed"] else ""
        lines.append(f"| {r['fold']} | {r['n']} | {r['positives']} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f}{mark} |")
    ok = [r for r in per_fold if r["status"] == "ok" and r["f1"] is not None]
    if ok:
        cells = [mean_std([r[m] for r in ok]) for m in ("precision", "recall", "f1")]
        lines.append(f"| **mean ± std** | {sum(r['n'] or 0 for r in ok)} | {sum(r['positives'] or 0 for r in ok)} | "
                     + " | ".join(f"**{m:.2f} ± {s:.2f}**" for m, s in cells) + " |")
    for model, score in PUBLISHED.get(spec.name, {}).get(featurizer or spec.task.featurizer, {}).items():
        lines.append(f"| *{model}, published (BERT-RE)* | | | | | {score:.1f} |")
    lines.append("")
    lines.append(f"{spec.title}: {folds}-fold cross-validation ({variant}), test P / R / F1 (%) per fold, mean ± sample "
                 f"std over {len(ok)} folds{'' if len(ok) == folds else f' ({folds - len(ok)} missing)'}.")
    if folds < available:
        lines.append(f"Only folds 0..{folds - 1} of {available}: not a full cross-validation.")
    if coverage is not None:
        each = "each once" if coverage["repeated"] == 0 else f"{coverage['repeated']} in more than one fold"
        lines.append(f"The {folds} test folds (whole, before any subsample) hold {coverage['instances']} instances, {each}; the "
                     "distribution's folds are document-disjoint (checked in the tests).")
    lines.append(f"Per fold k: test = fold k, dev = fold k+1 mod {available} (epoch choice), train = the other {available - 2} "
                 f"folds; the BERT-RE paper trains on all {available - 1} other folds with no dev set.")
    if budget != "full":
        lines.append(f"BUDGET RUN ({budget}): training subsample and few epochs on a CPU; compare directions, not values.")
    return "\n".join(lines)


def write_cv_report(out_dir: Path, name: str, table: str, per_fold: Sequence[dict[str, Any]]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.csv", out_dir / f"{name}.png"]
    with atomic_write(paths[0]) as handle:
        handle.write(table + "\n")
    rows: list[list[Any]] = [["fold", "status", "test_instances", "gold_positives", "precision", "recall", "f1", "wall_seconds"]]
    for r in per_fold:
        rows.append([r["fold"], r["status"], r["n"], r["positives"],
                         *("" if r[m] is None else f"{r[m]:.4f}" for m in ("precision", "recall", "f1")), r["wall_seconds"]])
    write_csv(paths[1], rows)
    plot_folds(paths[2], per_fold, name)
    return paths


def plot_folds(path: Path, per_fold: Sequence[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in per_fold if r["status"] == "ok" and r["f1"] is not None]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(per_fold) + 3.5), 3.6))
    if ok:
        folds = [r["fold"] for r in ok]
        ax.bar(folds, [r["f1"] for r in ok], color="tab:blue", label="F1")
        ax.plot(folds, [r["precision"] for r in ok], "o", color="tab:orange", label="P")
        ax.plot(folds, [r["recall"] for r in ok], "s", color="tab:green", label="R")
        mean, std = mean_std([r["f1"] for r in ok])
        ax.axhline(mean, color="black", linewidth=1, label=f"mean F1 {mean:.1f} ± {std:.1f}")
        ax.set_xticks(folds)
    ax.set_xlabel("fold (test)")
    ax.set_ylabel("test score (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
