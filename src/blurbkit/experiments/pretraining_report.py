"""The pretraining study's tables and plot (experiments/pretraining.py plans and runs it): the budget
each setting got, the Table 2-shaped fine-tuned scores, md/csv/png."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.experiments.pretraining import PUBLISHED, REFERENCE, Budget, Plan, Setting
from blurbkit.fileio import atomic_write, write_csv
from blurbkit.pretrain.objectives import get_objective
from blurbkit.tasks.blurb_score import blurb_groups
from blurbkit.tasks.registry import get_dataset


def _si(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def budget_table(budget: Budget, plans: Sequence[Plan], summaries: dict[str, dict[str, Any]] | None = None) -> str:
    """Per setting: steps, sequences, tokens, FLOPs, sizes (and, once trained, time and last loss)."""
    trained = bool(summaries)
    head = "| setting | objective | inputs | steps | sequences | tokens | mean length | training FLOPs | FLOPs/token " \
           "| FLOPs vs standard | encoder params | generator params |"
    lines = [head + (" pretraining time | final loss |" if trained else ""),
             "|---" * (12 + 2 * trained) + "|"]
    reference = next((p.flops for p in plans if p.setting.name == REFERENCE), None)
    for item in plans:
        ratio = f"{item.flops / reference:.3f}" if reference else "—"
        gen = _si(item.generator_params) if item.generator_params else "—"
        row = (f"| {item.setting.title} | {item.setting.objective} | {item.setting.inputs} | {item.steps} | {item.sequences} | "
               f"{_si(item.tokens)} | {item.mean_length:.1f} | {_si(item.flops)}FLOP | {_si(item.flops / item.tokens)} | {ratio} | {_si(item.encoder_params)} | {gen} |")
        if trained:
            summary = (summaries or {}).get(item.setting.name, {})
            loss = _final_loss(item.out, get_objective(item.setting.objective).loss_parts)
            row += f" {summary.get('seconds', math.nan) / 60:.1f} min | {loss} |"
        lines.append(row)
    lines.append("")
    lines.append(f"Budget: preset {budget.preset}, batch {budget.batch_size} x {budget.max_length} tokens, lr {budget.lr:g} "
                 f"({budget.warmup:g} warm-up, linear decay), mask rate {budget.mask_rate:g}, seed {budget.seed}; the FLOPs of "
                 f"{budget.steps} steps of the standard setting, each setting's steps = that budget / its FLOPs per step "
                 f"(3 x forward over real tokens; MLM heads at the masked positions; ELECTRA counts its generator, "
                 f"{budget.generator_size:g} of the discriminator's width).")
    return "\n".join(lines)


def _final_loss(out: Path, loss_parts: Sequence[str]) -> str:
    """The last logged loss, with its terms when there are several (the objective says which)."""
    try:
        lines = (out / "train_log.jsonl").read_text("utf-8").splitlines()
        entry = json.loads(lines[-1])
    except (OSError, IndexError, json.JSONDecodeError):
        return "—"
    parts = [f"{entry['loss']:.3f}"]
    for name in loss_parts if len(loss_parts) > 1 else ():
        if name in entry:
            parts.append(f"{name.removesuffix('_loss')} {entry[name]:.3f}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")


def blurb_average(means: dict[str, float], datasets: Sequence[str]) -> float | None:
    """The BLURB rule over the given datasets: the mean of each task type's dataset means, then the
    mean over task types; None when a dataset has no mean."""
    if any(d not in means for d in datasets):
        return None
    groups = [[means[d] for d in names if d in datasets] for names in blurb_groups().values()]
    return statistics.fmean(statistics.fmean(g) for g in groups if g)


def results_table(settings: Sequence[Setting], datasets: Sequence[str], results: dict[tuple[str, str], dict[str, Any]],
                  budget_label: str) -> str:
    """Rows = datasets + the BLURB-style average; columns = settings; cells mean ± std over seeds
    (test, %) and the failed seeds; the paper's Table 2 below for the same rows."""
    from blurbkit.experiments.stability import cell_stats

    names = [s.title for s in settings]
    lines = [f"| dataset | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    means: dict[str, dict[str, float]] = {s.name: {} for s in settings}
    for dataset in datasets:
        cells = []
        for setting in settings:
            entry = results.get((dataset, setting.name))
            stats = cell_stats(entry) if entry else None
            if not stats or not stats["n"]:
                cells.append("—" + (f" ({stats['errored']} errored)" if stats and stats["errored"] else ""))
                continue
            means[setting.name][dataset] = stats["mean"]
            text = f"{stats['mean']:.2f} ± {stats['std']:.2f}"
            if stats["failed"] or stats["errored"]:
                text += f" ({stats['failed']}/{stats['n']} failed" + (f", {stats['errored']} errored" if stats["errored"] else "") + ")"
            cells.append(text)
        lines.append(f"| {get_dataset(dataset).title} | {' | '.join(cells)} |")
    averages = [blurb_average(means[s.name], datasets) for s in settings]
    lines.append(f"| **BLURB-style average** | {' | '.join('—' if a is None else f'**{a:.2f}**' for a in averages)} |")
    seeds = sorted({cell_stats(e)["n"] for e in results.values() if e["scores"]})
    lines.append("")
    lines.append(f"Test score (%), mean ± sample std over {'/'.join(map(str, seeds)) or 0} seeds; failed = no better than "
                 f"the task type's trivial predictor. BLURB-style average: the mean over task types of each type's "
                 f"dataset means, over these {len(datasets)} datasets only.")
    if budget_label != "full":
        lines.append(f"BUDGET RUN ({budget_label}): small fine-tuning subsets and few epochs; compare directions, not values.")
    lines.append("")
    lines.append("Published (stability paper, Table 2: BASE models pretrained on PubMed at full scale, full fine-tuning):")
    lines.append("")
    lines.append(f"| dataset | {' | '.join(names)} |")
    lines.append("|---" * (len(names) + 1) + "|")
    for dataset in datasets:
        row = [PUBLISHED[s.name].get(dataset) for s in settings]
        lines.append(f"| {get_dataset(dataset).title} | {' | '.join('—' if v is None else f'{v:.2f}' for v in row)} |")
    published = [blurb_average(PUBLISHED[s.name], datasets) for s in settings]
    lines.append(f"| BLURB-style average | {' | '.join('—' if a is None else f'{a:.2f}' for a in published)} |")
    return "\n".join(lines)


def write_report(out_dir: Path, name: str, text: str, settings: Sequence[Setting], datasets: Sequence[str],
                 results: dict[tuple[str, str], dict[str, Any]], plans: Sequence[Plan]) -> list[Path]:
    """NAME.md (budget + results tables), NAME.csv (one row per setting x dataset x seed, with the
    setting's pretraining budget) and NAME.png (mean ± std per dataset, one bar per setting)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / f"{name}.md") as handle:
        handle.write(text + "\n")
    by_setting = {p.setting.name: p for p in plans}
    rows: list[list[Any]] = [["setting", "objective", "pretrain_steps", "pretrain_tokens", "pretrain_flops", "dataset", "seed",
                     "test_score", "failed", "wall_seconds"]]
    for (dataset, setting), entry in results.items():
        item = by_setting[setting]
        for seed, score, failed, seconds in zip(entry["seeds"], entry["scores"], entry["failed"], entry["seconds"], strict=True):
            rows.append([setting, item.setting.objective, item.steps, f"{item.tokens:.0f}", f"{item.flops:.4g}", dataset,
                             seed, f"{score:.4f}", int(failed), f"{seconds:.1f}"])
    write_csv(out_dir / f"{name}.csv", rows)
    written = [out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    if any(entry["scores"] for entry in results.values()):
        _plot(out_dir / f"{name}.png", settings, datasets, results)
        written.append(out_dir / f"{name}.png")
    return written


def _plot(path: Path, settings: Sequence[Setting], datasets: Sequence[str], results: dict[tuple[str, str], dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from blurbkit.experiments.stability import cell_stats

    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(datasets)), 4.2))
    width = 0.8 / max(1, len(settings))
    for i, setting in enumerate(settings):
        stats = [cell_stats(results[(d, setting.name)]) if (d, setting.name) in results else None for d in datasets]
        xs = [j + (i - (len(settings) - 1) / 2) * width for j in range(len(datasets))]
        ax.bar(xs, [s["mean"] if s and s["n"] else 0 for s in stats], width, yerr=[s["std"] if s and s["n"] else 0 for s in stats],
               capsize=2, label=setting.title)
        for j, d in enumerate(datasets):  # every seed as a dot, failed ones as x
            entry = results.get((d, setting.name), {})
            for score, failed in zip(entry.get("scores", []), entry.get("failed", []), strict=True):
                ax.plot(xs[j], score, "x" if failed else ".", color="black", markersize=4, alpha=0.6)
    ax.set_xticks(range(len(datasets)), [get_dataset(d).title for d in datasets], rotation=20, ha="right")
    ax.set_ylabel("test score (%)")
    ax.set_title("pretraining settings at equal compute: fine-tuned test scores")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
