"""Fine-tuning stability studies (SPEC §4, §8 Tables 3, 4, 5, 8, 9): methods x datasets (x training
sizes) x seeds, through the Benchmark runner and the results store (a study run again continues
where it stopped: stored runs are skipped).

Every cell reports what the stability papers report and what a mean hides:
  mean ± sample std over all seeds · mean over the seeds that did not fail · failed/seeds,
where a run *fails* when its test score is no better than a trivial predictor's (the task type's
`run_failed`, tasks/types/base.py: majority class, constant, all-O). The table states its budget
(training size, epochs, batch size, learning rate, dev/test subsamples) and puts the published
numbers beside, where the papers give them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.ablation import Variant
from blurbkit.experiments.run_records import precision_counts
from blurbkit.fileio import atomic_write, write_csv
from blurbkit.metrics.seeds import sample_std
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig, Hyperparams

LONGER = 3  # "longer training": the budget's epochs times this, stopped early on dev
PATIENCE = 5  # epochs without a dev improvement before a longer run stops
STABILISE = {"reinit_layers": 1}  # search study: every grid run of stabilised+search
FINAL_MODEL = {"final_on_train_dev": True}  # search study: the test runs of stabilised+search


@dataclass(frozen=True)
class StabilityStudy:
    name: str
    title: str
    datasets: tuple[str, ...]
    variants: tuple[Variant, ...]
    train_sizes: tuple[int | None, ...] = (None,)  # low-resource rows (None: the budget's training set)
    # row label ("BIOSSES", "ChemProt 100") -> variant -> the published cell, as printed in the paper
    published: dict[str, dict[str, str]] = field(default_factory=dict)
    published_note: str = ""
    note: str = ""  # what this implementation does differently from the paper
    cost_columns: bool = False  # pruning: parameters and seconds per run beside the score


def _layer_methods() -> tuple[Variant, ...]:
    return (
        Variant("standard", {}),
        Variant("freeze", {"freeze_lower_half": True}),
        Variant("decay0.9", {"layer_decay": 0.9}),
        Variant("decay0.8", {"layer_decay": 0.8}),
        Variant("reinit1", {"reinit_layers": 1}),
        Variant("reinit2", {"reinit_layers": 2}),
        Variant("reinit3", {"reinit_layers": 3}),
    )


def _table4() -> dict[str, dict[str, str]]:
    bert = {"BIOSSES": ("93.46 (0.96)", "92.86 (0.88)", "93.35 (0.78)", "94.49 (0.88)"),
            "BioASQ": ("87.56 (2.43)", "90.50 (1.51)", "88.29 (2.76)", "81.28 (3.72)")}
    return {row: {"standard": b, "freeze": f, "decay0.9": d, "decay0.8": d, "reinit1": r, "reinit2": r, "reinit3": r}
            for row, (b, f, d, r) in bert.items()}


def _table5() -> dict[str, dict[str, str]]:
    table = {
        "ChemProt 100": ("22.45 (3.22)", "20.39 (2.53)", "20.50 (2.44)", "19.33 (3.18)"),
        "ChemProt 500": ("44.77 (3.71)", "48.40 (2.85)", "48.55 (1.78)", "43.79 (3.29)"),
        "ChemProt 1000": ("56.62 (1.93)", "59.91 (1.26)", "59.67 (1.39)", "55.31 (2.65)"),
        "DDI 100": ("10.72 (2.93)", "11.13 (3.73)", "10.34 (2.50)", "9.83 (2.64)"),
        "DDI 500": ("34.36 (5.46)", "39.78 (4.39)", "40.15 (3.34)", "36.67 (5.50)"),
        "DDI 1000": ("58.71 (2.87)", "61.40 (2.53)", "61.54 (1.46)", "58.67 (3.54)"),
    }
    return {row: {"standard": b, "freeze": f, "decay0.9": d, "decay0.8": d, "reinit1": r, "reinit2": r, "reinit3": r}
            for row, (b, f, d, r) in table.items()}


def _table8() -> dict[str, dict[str, str]]:
    # PubMedBERT-base has 12 blocks and the paper removes 0/2/4/6; MiniLM has 6: 0/1/2/3 is the same share.
    table = {"BIOSSES": "92.30 92.66 92.80 92.12", "ChemProt": "77.24 76.11 73.40 72.74",
             "BioASQ": "87.56 83.73 77.50 74.00", "DDI": "82.36 82.16 79.71 79.30", "GAD": "83.96 82.33 80.23 79.21",
             "PubMedQA": "55.84 51.22 49.76 50.08", "BC5-chem": "93.33 93.22 92.96 92.40", "HoC": "82.32 82.46 82.43 82.01",
             "NCBI-disease": "87.82 88.38 87.99 87.38", "BC5-disease": "85.62 85.35 85.17 84.29"}
    return {row: dict(zip(("drop0", "drop1", "drop2", "drop3"), values.split(), strict=True)) for row, values in table.items()}


STUDIES: dict[str, StabilityStudy] = {
    study.name: study
    for study in (
        StabilityStudy(
            "optimization", "optimisation adjustments (Table 3)", ("biosses",),
            (Variant("standard", {}), Variant("no-bias-correction", {"bias_correction": False}),
             Variant("longer", {"patience": PATIENCE}, epochs_scale=LONGER),
             Variant("longer+no-bias-correction", {"patience": PATIENCE, "bias_correction": False}, epochs_scale=LONGER)),
            published={"BIOSSES": {"standard": "92.64", "longer": "93.46", "longer+no-bias-correction": "91.75"}},
            published_note="BERT-pretrained PubMedBERT-base (Table 3): improved = bias correction + up to 100 epochs "
                           "(here: longer), standard = up to 5 epochs, no bias correction = improved without it",
            note=f"longer = up to {LONGER}x the budget's epochs, stopped when dev has not improved for {PATIENCE} "
                 f"epochs, never before the budget's epochs"),
        StabilityStudy(
            "stability", "layer-specific stabilisation (Table 4)", ("biosses", "bioasq", "pubmedqa"), _layer_methods(),
            published=_table4(),
            published_note="BERT-pretrained PubMedBERT-base, mean (std) (Table 4); the paper has one layer-wise decay "
                           "column (d in {0.8, 0.9}) and one re-init column (best k), repeated under each"),
        StabilityStudy(
            "low-resource", "low-resource relation extraction (Table 5)", ("chemprot", "ddi"), _layer_methods(),
            train_sizes=(100, 500, 1000), published=_table5(),
            published_note="PubMedBERT-base, mean (std) (Table 5); one decay and one re-init column in the paper"),
        StabilityStudy(
            "pruning", "top layers removed before fine-tuning (Table 8)", ("biosses", "chemprot", "bioasq"),
            tuple(Variant(f"drop{k}", {"drop_layers": k}) for k in range(4)),
            published=_table8(), cost_columns=True,
            published_note="PubMedBERT-base (12 blocks) with 0/2/4/6 removed, shown under drop0-3 of MiniLM's 6 blocks "
                           "(the same share of the encoder)"),
        StabilityStudy(
            "search", "standard recipe vs dev-selected search, without and with stabilisation (Table 9)",
            ("biosses", "pubmedqa", "ddi", "bioasq"),
            (Variant("standard", {}),
             Variant("search", {}, searched=True),
             Variant("stabilised+search", dict(STABILISE), searched=True, test_overrides=dict(FINAL_MODEL))),
            published={"BIOSSES": {"search": "92.30", "stabilised+search": "94.49"},
                       "PubMedQA": {"search": "55.84", "stabilised+search": "63.92"},
                       "DDI": {"search": "82.36", "stabilised+search": "83.17"},
                       "BioASQ": {"search": "87.56", "stabilised+search": "82.75"}},
            published_note="PubMedBERT-base, standard vs stabilisation + extensive search (Table 9); the paper's "
                           "standard column is BLURB's PubMedBERT result, itself chosen on dev over the standard grid "
                           "(SPEC §2), so it stands under search here; the paper has no fixed-recipe column",
            note="standard = blurbkit's default recipe for the dataset (tasks/datasets.toml), no search; search = the protocol's grid (tasks/grids.toml, or "
                 "--grid) x selection seeds from 100 scored on dev, the point with the best mean dev score, then the "
                 "test seeds 0.. on it (disjoint from the selection seeds, the same seeds as standard); "
                 "stabilised+search = the same search with the top block re-initialised in every grid run, and "
                 "each test run's final model retrained on train+dev for its best dev epoch count (not in the "
                 "selection runs: their dev score is the model's before that retrain, so it would only cost time). "
                 "Longer training is not applied inside the grid: a grid point fixes its epochs and the grid's "
                 "epoch options already search the training length, so scaling them would make the two searches "
                 "differ in more than stabilisation; every run keeps its best dev epoch anyway, so patience would "
                 "only stop runs sooner"),
    )
}


def get_stability_study(name: str) -> StabilityStudy:
    if name not in STUDIES:
        raise BlurbkitError(f"unknown stability study {name!r} (one of {', '.join(STUDIES)})")
    return STUDIES[name]


@dataclass(frozen=True)
class Cell:
    row: str  # "BIOSSES" or "ChemProt 500"
    variant: str
    config: FinetuneConfig


def row_label(dataset: str, size: int | None) -> str:
    title = get_dataset(dataset).title
    return title if size is None else f"{title} {size}"


def check_no_conflict(study: StabilityStudy, config: FinetuneConfig) -> None:
    """A CLI option setting what the study varies (away from its default) would be overridden."""
    defaults = {f.name: f.default for f in fields(Hyperparams)}
    varied = {key for variant in study.variants for key in (*variant.overrides, *variant.test_overrides)}
    for key in sorted(varied):
        if getattr(config, key) != defaults[key]:
            raise BlurbkitError(f"--{key.replace('_', '-')} is what study {study.name} varies; leave it out")


def check_train_size(study: StabilityStudy, max_train_examples: int | None) -> None:
    """The low-resource study sets the training size itself (over a budget's, which it replaces)."""
    if study.train_sizes != (None,) and max_train_examples is not None:
        raise BlurbkitError(f"study {study.name} sets the training size ({', '.join(map(str, study.train_sizes))}); "
                            "leave out --max-train-examples")


def seeds_for(dataset: str, seeds: int | None) -> int:
    """`seeds` (--seeds) when given, else the protocol's for the dataset (datasets.toml `seeds`: 10 for
    BIOSSES, BioASQ and PubMedQA, 5 for the rest), as the papers report every table."""
    return seeds if seeds is not None else get_dataset(dataset).seeds


def build_cells(study: StabilityStudy, datasets: Sequence[str], variants: Sequence[Variant], seeds: int | None,
                make_config: Callable[[str, int], FinetuneConfig]) -> list[Cell]:
    """Every row x variant x seed, seed-major (every method has a first result before any a second);
    `seeds` None: each dataset's protocol seeds (`seeds_for`).
    Searched variants are not here: their runs depend on a choice on dev (experiments/search_study.py)."""
    variants = [v for v in variants if not v.searched]
    cells: list[Cell] = []
    for dataset in datasets:
        spec = get_dataset(dataset)
        for size in study.train_sizes:
            for seed in range(seeds_for(dataset, seeds)):
                base = make_config(dataset, seed)
                check_no_conflict(study, base)
                if size is not None:
                    base = base.replace(max_train_examples=size)
                for variant in variants:
                    config = base.replace(**variant.overrides)
                    if variant.epochs_scale != 1:
                        # Longer training: up to `epochs_scale` x the recipe's epochs, stopped early on
                        # dev but never before the recipe's own epochs (still in warm-up, or shorter
                        # than the standard run, it would not be longer training).
                        epochs = config.epochs or spec.recipe.epochs
                        config = config.replace(epochs=epochs * variant.epochs_scale,
                                                min_epochs=epochs if config.patience else None)
                    cells.append(Cell(row_label(dataset, size), variant.name, config))
    return cells


def budget_lines(cells: Sequence[Cell]) -> list[str]:
    """One line per row: the training set, epochs, batch size, lr and subsamples its runs used."""
    lines, seen = [], set()
    for cell in cells:
        if cell.row in seen or cell.variant != cells[0].variant:
            continue
        seen.add(cell.row)
        config, spec = cell.config, get_dataset(cell.config.dataset)
        hyper = config.hyper.resolved(spec)
        full = spec.published.get("train")
        if config.max_train_examples and not (full and config.max_train_examples >= full):
            train = f"{config.max_train_examples} sampled"
        else:
            train = f"all {full or ''}".rstrip()
        parts = [f"train {train}", f"epochs {hyper.epochs}", f"batch {hyper.batch_size}", f"lr {hyper.lr:g}",
                 f"max length {hyper.max_length}"]
        if config.max_eval_examples:
            parts.append(f"dev ≤{config.max_eval_examples}")
        if config.max_test_examples:
            parts.append(f"test ≤{config.max_test_examples}")
        longer = {c.variant: c.config.hyper.resolved(spec).epochs for c in cells
                  if c.row == cell.row and c.config.epochs != config.epochs}
        if longer:
            parts[1] += f" ({', '.join(f'{name} {epochs}' for name, epochs in longer.items())})"
        lines.append(f"- {cell.row}: {', '.join(parts)}")
    return lines


def collect(cells: Sequence[Cell], rows: Sequence[dict[str, Any]], run_key_of: Callable[[Cell], str]) -> dict[tuple[str, str], dict[str, Any]]:
    """(row, variant) -> seed scores (%), which seeds failed, errors, seconds, from the store's rows."""
    by_key = {row["run_key"]: row for row in rows}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        entry = out.setdefault((cell.row, cell.variant), {"scores": [], "failed": [], "errored": 0, "seconds": [],
                                                          "seeds": [], "precisions": [], "dataset": cell.config.dataset,
                                                          "drop_layers": cell.config.drop_layers})
        row = by_key.get(run_key_of(cell))
        if row is None:
            continue
        if row.get("status", "ok") != "ok":
            entry["errored"] += 1
            continue
        test = json.loads(row["test_metrics"] or "{}")
        entry["scores"].append(100 * row["test_score"])
        entry["failed"].append(get_dataset(cell.config.dataset).task.run_failed(test))
        if row["wall_seconds"] is not None:  # a run stored without its time does not count as 0 s
            entry["seconds"].append(row["wall_seconds"])
        entry["seeds"].append(row["seed"])
        entry["precisions"].append(row.get("precision"))
    return out


def cell_stats(entry: dict[str, Any]) -> dict[str, Any]:
    scores, failed = entry["scores"], entry["failed"]
    kept = [s for s, f in zip(scores, failed, strict=True) if not f]
    return {
        "n": len(scores),
        "mean": statistics.fmean(scores) if scores else math.nan,
        "std": sample_std(scores),
        "mean_ok": statistics.fmean(kept) if kept else math.nan,
        "failed": sum(failed),
        "errored": entry["errored"],
        # The median: one run paused or sharing its cores would otherwise move the whole cell's cost.
        "seconds": statistics.median(entry["seconds"]) if entry["seconds"] else math.nan,
    }


def encoder_parameters(model: str | None, drop_layers: int) -> int:
    """Parameters of the encoder with its top `drop_layers` blocks removed (the head adds a few hundred)."""
    from blurbkit.models.loading import load_encoder, resolve_model_dir
    from blurbkit.train.stabilise import drop_top_layers

    encoder = load_encoder(resolve_model_dir(model))
    drop_top_layers(encoder, drop_layers)
    return sum(p.numel() for p in encoder.parameters())


def stability_table(study: StabilityStudy, cells: Sequence[Cell], results: dict[tuple[str, str], dict[str, Any]],
                    variants: Sequence[Variant], budget: str, parameters: dict[int, int] | None = None,
                    budget_cells: Sequence[Cell] | None = None, budget_extra: Sequence[str] = ()) -> str:
    """`budget_cells`: the runs the budget lines describe (default all); `budget_extra`: more budget lines
    (the search study's grids)."""
    names = [v.name for v in variants]
    rows = list(dict.fromkeys(cell.row for cell in cells))
    lines = [f"| dataset | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for row in rows:
        out = []
        for name in names:
            entry = results.get((row, name))
            stats = cell_stats(entry) if entry else None
            if not stats or not stats["n"]:
                out.append("—" + (f" ({stats['errored']} errored)" if stats and stats["errored"] else ""))
                continue
            text = f"{stats['mean']:.2f} ± {stats['std']:.2f} · "
            text += f"{stats['mean_ok']:.2f}" if not math.isnan(stats["mean_ok"]) else "—"
            text += f" · {stats['failed']}/{stats['n']} failed"
            if stats["errored"]:
                text += f", {stats['errored']} errored"
            if study.cost_columns:
                params = (parameters or {}).get(entry["drop_layers"])
                text += (f" · {params / 1e6:.1f}M" if params else "") + f" · {stats['seconds']:.0f} s/run"
            out.append(text)
        lines.append(f"| {row} | {' | '.join(out)} |")
    for row in rows:
        published = study.published.get(row, {})
        if any(name in published for name in names):
            lines.append(f"| *{row}, published* | {' | '.join(published.get(name, '') for name in names)} |")
    seeds = sorted({cell_stats(e)["n"] for e in results.values()} - {0})
    lines += ["", f"Study {study.name} ({study.title}): test score (%) per cell: mean ± sample std over all seeds · "
              f"mean over the seeds that did not fail · failed/seeds ({'/'.join(map(str, seeds))} seeds)"
              + (" · encoder parameters · median wall seconds per run" if study.cost_columns else "") + ".",
              "A run fails when its test score is no better than a trivial predictor's on the same test records "
              "(majority class, constant, no entity): F1 0, a relation F1 or accuracy at or below the majority "
              "class's (GAD's majority is the positive class: 68.96 F1 on its test set), Pearson undefined or ≤ 0."]
    if study.note:
        lines.append(f"Here: {study.note}.")
    if study.published_note:
        lines.append(f"Published rows: {study.published_note}.")
    mixed = [f"{row} / {name}: {counts}" for (row, name), entry in results.items()
             if (counts := precision_counts({"precision": p} for p in entry.get("precisions", [])))]
    if mixed:
        lines.append("MIXED PRECISION in cells merged from machines of two kinds (a seed's score moves with the "
                     f"precision): {'; '.join(mixed)}.")
    lines.append(f"Budget ({budget}):")
    lines += budget_lines(cells if budget_cells is None else budget_cells)
    lines += budget_extra
    if budget != "full":
        lines.append(f"BUDGET RUN ({budget}): a small model and small budgets on CPU; compare directions, not values.")
    return "\n".join(lines)


def write_stability_report(out_dir: Path, name: str, table: str, study: StabilityStudy,
                           results: dict[tuple[str, str], dict[str, Any]], variants: Sequence[Variant]) -> list[Path]:
    """NAME.md (the table), NAME.csv (one line per seed run) and NAME.png (seed scores per method)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / f"{name}.md") as handle:
        handle.write(table + "\n")
    rows: list[list[Any]] = [["study", "row", "method", "seed", "test_score", "failed", "wall_seconds"]]
    for (row, variant), entry in results.items():
        for seed, score, failed, seconds in zip(entry["seeds"], entry["scores"], entry["failed"], entry["seconds"], strict=True):
            rows.append([study.name, row, variant, seed, f"{score:.4f}", int(failed), f"{seconds:.1f}"])
    write_csv(out_dir / f"{name}.csv", rows)
    written = [out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    if any(entry["scores"] for entry in results.values()):
        plot_seed_scores(out_dir / f"{name}.png", study, results, [v.name for v in variants])
        written.append(out_dir / f"{name}.png")
    return written


def plot_seed_scores(path: Path, study: StabilityStudy, results: dict[tuple[str, str], dict[str, Any]], names: list[str]) -> None:
    """One panel per row: a box of the seed scores per method with every seed drawn over it; failed runs as x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(row for row, _ in results))
    fig, axes = plt.subplots(1, len(rows), figsize=(max(5, 1.1 * len(names)) * len(rows), 4), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        data = [results.get((row, name), {}).get("scores", []) for name in names]
        ax.boxplot([d if d else [math.nan] for d in data], widths=0.5, showfliers=False)
        for i, name in enumerate(names, start=1):
            entry = results.get((row, name), {})
            for j, (score, failed) in enumerate(zip(entry.get("scores", []), entry.get("failed", []), strict=True)):
                x = i + 0.18 * ((j % 5) - 2) / 2
                ax.plot(x, score, "x" if failed else "o", color="tab:red" if failed else "tab:blue", alpha=0.7, markersize=5)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=35, ha="right")
        ax.set_title(row)
        ax.set_ylabel("test score (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{study.name}: seed scores per method (x = failed run)")
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
