"""The STILT study page (`blurbkit stilt --matrix`): the paper's Tables 2-3 from the store.

Per (model, budget): rows = target tasks, columns = the baseline and each intermediate task (by
dataset title); a cell = the target's test score after that intermediate task, mean ± std over
seeds, and its difference from the target's baseline over the same seeds with a paired-bootstrap
95% interval over the target's test units (experiments/compare.py) where the run directories and
test data are here; the colour-coded heatmap of experiments/stilt_report.py (gain blue, loss orange).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments import stilt, stilt_report
from blurbkit.experiments.compare import DatasetComparison, compare_cells
from blurbkit.experiments.leaderboard import Cell, make_cell
from blurbkit.experiments.site.context import Site, slug
from blurbkit.experiments.site.html import Raw, Td, esc, figure, notice, runs, table
from blurbkit.experiments.site.plots import save_figure
from blurbkit.experiments.site.studies import STUDY_PAGES, StudyPage
from blurbkit.tasks.registry import get_dataset


@dataclass
class Pair:
    """One cell of the matrix: the target after `source`, and the target's baseline on the same seeds."""

    target: str
    source: str
    cell: Cell
    baseline: Cell | None
    comparison: DatasetComparison | None = None

    @property
    def difference(self) -> float | None:
        if self.cell.mean is None or self.baseline is None or self.baseline.mean is None:
            return None
        return self.cell.mean - self.baseline.mean


@dataclass
class Matrix:
    model: str
    budget: str
    targets: list[str]
    sources: list[str]
    baselines: dict[str, Cell]
    pairs: dict[tuple[str, str], Pair]
    unknown: list[str] = field(default_factory=list)  # variants this study does not make


def _options(row: dict[str, Any]) -> str:
    """A run's store-key options less the encoder it starts from (a transfer's is its intermediate)."""
    options = json.loads(row.get("hyperparameters") or "{}")
    return json.dumps({k: v for k, v in options.items() if k != "model"}, sort_keys=True)


def paired(baseline_rows: list[dict[str, Any]], cell: Cell) -> tuple[Cell, Cell | None]:
    """The transfer cell and the target's baseline on the same seeds and the same settings (the
    baseline's rows with the transfer's options; stilt.collect compares the same way): a seed
    either side lacks (a failed baseline under --keep-going) is left out of both."""
    setting = _options(cell.runs[0]) if cell.runs else None
    rows = [r for r in baseline_rows if _options(r) == setting]
    if not rows:
        return cell, None
    baseline = make_cell(cell.dataset, rows)
    seeds = {r["seed"] for r in cell.runs} & {r["seed"] for r in baseline.runs}
    keep = lambda c: Cell(c.dataset, [r for r in c.runs if r["seed"] in seeds], c.failed, c.superseded)  # noqa: E731
    return keep(cell), keep(baseline)


def _one_setting(items: list[dict[str, Any]], intermediates: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The transfers of the latest run's setting: its own options and its intermediate runs' (each
    seed's transfer starts from that seed's intermediate, named by digest in the variant); transfers
    after intermediates trained otherwise are counted, not averaged in."""
    def setting(row: dict[str, Any]) -> tuple[str, str]:
        digest = row["variant"].rpartition("@")[2]
        intermediate = next((r for key, r in intermediates.items() if key.startswith(digest)), None)
        return _options(row), _options(intermediate) if intermediate is not None else "?"

    last = max(range(len(items)), key=lambda i: (str(items[i].get("created_at") or ""), i))  # stored last, as latest_setting
    latest = setting(items[last])
    kept = [r for r in items if setting(r) == latest]
    return kept, len(items) - len(kept)


def matrix(model: str, budget: str, rows: list[dict[str, Any]]) -> Matrix:
    base_rows: dict[str, list[dict[str, Any]]] = {}
    pair_rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    unknown = []
    for row in rows:
        try:
            source = stilt.intermediate_of(row["variant"])
        except BlurbkitError:
            unknown.append(row["variant"])
            continue
        if source is None:
            base_rows.setdefault(row["dataset"], []).append(row)
        else:
            pair_rows.setdefault((row["dataset"], source), []).append(row)
    targets = list(dict.fromkeys([*base_rows, *(t for t, _ in pair_rows)]))
    named = {s for _, s in pair_rows}
    sources = [t for t in targets if t in named] + sorted(named - set(targets))
    baselines = {t: make_cell(t, items) for t, items in base_rows.items()}
    intermediates = {r["run_key"]: r for items in base_rows.values() for r in items}
    pairs = {}
    for (target, source), items in pair_rows.items():
        kept, left_out = _one_setting(items, intermediates)
        cell, baseline = paired(base_rows.get(target, []), make_cell(target, kept, left_out))
        pairs[(target, source)] = Pair(target, source, cell, baseline)
    return Matrix(model, budget, targets, sources, baselines, pairs, sorted(set(unknown)))


def heatmap_cells(m: Matrix) -> dict[tuple[str, str | None], stilt.Cell]:
    """The matrix as experiments/stilt.py's cells (its heatmap draws them)."""
    out: dict[tuple[str, str | None], stilt.Cell] = {}
    for target, cell in m.baselines.items():
        if cell.runs:
            out[(target, None)] = stilt.Cell(cell.scores, failed=cell.trivial_failures())
    for key, pair in m.pairs.items():
        if pair.cell.runs:
            base = pair.baseline.mean if pair.baseline is not None and pair.baseline.runs else None
            out[key] = stilt.Cell(pair.cell.scores, base, pair.cell.trivial_failures())
    return out


def _mean_std(cell: Cell | None) -> str:
    if cell is None or cell.mean is None:
        return "—"
    trivial = cell.trivial_failures()
    failed = f" · {trivial} failed" if trivial else ""
    return f"{cell.mean:.2f} ± {cell.std:.2f} · n={cell.n}{failed}"


def _difference(pair: Pair) -> str:
    """'+1.23 [−0.40, +2.90]', blue for a gain and orange for a loss, bold when the interval excludes 0."""
    diff = pair.difference
    if diff is None:
        return ""
    c = pair.comparison
    sure = c is not None and c.low is not None and (c.low > 0 or c.high < 0)
    interval = "" if c is None or c.low is None else f" [{c.low:+.2f}, {c.high:+.2f}]"
    cls = ("gain" if diff > 0 else "loss" if diff < 0 else "") + (" sure" if sure else "")
    return f'<span class="sd {cls.strip()}">Δ {diff:+.2f}{interval}</span>'


@STUDY_PAGES.register("stilt")
class StiltPage(StudyPage):
    priority = 10

    def claims(self, study: str) -> bool:
        return study == stilt.STUDY

    def title(self, study: str) -> str:
        return "STILT: intermediate-task transfer"

    def build(self, site: Site, study: str, rows: list[dict[str, Any]]) -> str:
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault((row["model"], row["budget"]), []).append(row)
        parts = [f"<p>{runs(len(rows))}. Each target is fine-tuned from the pretrained encoder (baseline) and from the "
                 "encoder fine-tuned on each intermediate task first (same seed); a cell is the target's test score "
                 "(%), mean ± sample std over seeds, and below it Δ = its difference from the target's baseline on the "
                 f"same seeds with a 95% interval from {site.replicates} paired bootstrap resamples of the target's "
                 "test units (both sides and every seed scored on each resample). "
                 '<span class="gain">Blue</span>: a gain, <span class="loss">orange</span>: a loss, bold: the interval '
                 "excludes 0. A failed run is no better than the trivial predictor.</p>"]
        for number, ((model, budget), items) in enumerate(grouped.items()):
            parts.append(self.section_html(site, matrix(model, budget, items), number))
        return "\n".join(parts)

    def section_html(self, site: Site, m: Matrix, number: int) -> str:
        name = site.names.get(m.model, m.model)
        parts = [f'<h2 id="{slug(f"{name}-{m.budget}")}">{esc(name)} · budget {esc(m.budget)}</h2>']
        for i, pair in enumerate(m.pairs.values()):
            if pair.cell.runs and pair.baseline is not None and pair.baseline.runs:
                pair.comparison = compare_cells(pair.target, pair.cell, pair.baseline, site.gold, site.replicates,
                                                seed=number * 1000 + i)
        header = [Td("target (task type)", cls="text"), "none (baseline)",
                  *[Td(get_dataset(s).title, title=f"intermediate task {s}") for s in m.sources]]
        body = []
        for target in m.targets:
            spec = get_dataset(target)
            row: list[Any] = [Td(Raw(f"{esc(spec.title)}<span class=\"sd\">{esc(spec.task.title)}</span>"), cls="text"),
                              Td(_mean_std(m.baselines.get(target)))]
            for source in m.sources:
                pair = m.pairs.get((target, source))
                if source == target:
                    row.append(Td("·", title="no transfer from a task to itself"))
                elif pair is None or pair.cell.mean is None:
                    row.append(Td("—"))
                else:
                    row.append(Td(Raw(f"{esc(_mean_std(pair.cell))}{_difference(pair)}"), sort=round(pair.cell.mean, 4)))
            body.append(row)
        classes = [""] * len(body)
        for target, model, cells in stilt_report.published_rows(m.targets, m.sources):
            body.append([Td(Raw(f'{esc(get_dataset(target).title)} <span class="badge pub">{esc(model)}, published</span>'),
                            cls="text"), *cells])
            classes.append("published")
        parts.append(table(header, body, row_classes=classes))
        if len(body) > len(m.targets):
            parts.append(f'<p class="muted">{esc(stilt_report.PUBLISHED_NOTE)}</p>')
        cells = heatmap_cells(m)
        if any(source is not None for _, source in cells):
            file, src = site.img(f"stilt-heatmap-{number}.svg")
            fig = stilt_report.heatmap_figure(m.targets, m.sources, cells, f"STILT, {name}, {m.budget}: target score and Δ from baseline")
            save_figure(fig, file)
            parts.append(figure(src, "Each cell: the target's mean test score and its difference from the baseline "
                                "(gain blue, loss orange, saturation = size of the change; † = failed seeds).",
                                f"STILT heatmap of {name}"))
        parts.append(self.differences(m))
        parts.append('<p>What transfers: the encoder fine-tuned on the intermediate task. Its featurizer and head are '
                     "dropped and the target's are built new, within one task type as across task types.</p>"
                     "<details><summary>per pair of task types</summary><ul>"
                     + "".join(f"<li>{esc(line)}</li>" for line in stilt.head_lines(m.sources, m.targets)) + "</ul></details>")
        notes = sorted({n for cell in [*m.baselines.values(), *(p.cell for p in m.pairs.values())] for n in cell.notes})
        budget = (f"Budget {m.budget}: " + ("the full training sets." if m.budget == "full" else
                  "a CPU budget run (small training subsets, few epochs); compare directions, not the paper's values."))
        parts.append(f'<p class="muted">{esc(budget)}</p>')
        if notes:
            parts.append('<details><summary>run notes (subsamples, data)</summary><ul class="muted">'
                         + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></details>")
        if m.unknown:
            parts.append(notice(f"Not shown: runs of variants this page does not know ({', '.join(m.unknown)})."))
        return "\n".join(parts)

    def differences(self, m: Matrix) -> str:
        header = ["target", "intermediate", "mean", "baseline (same seeds)", "Δ", "95% interval", "units", "Welch p",
                  "Mann-Whitney p", Td("note", cls="text")]
        rows = []
        for target in m.targets:
            for source in m.sources:
                pair = m.pairs.get((target, source))
                if pair is None or pair.difference is None:
                    continue
                c = pair.comparison or DatasetComparison(target, problem="no baseline on the same seeds")
                p = c.tests or {}
                rows.append([get_dataset(target).title, get_dataset(source).title, f"{pair.cell.mean:.2f}",
                             f"{pair.baseline.mean:.2f}", f"{pair.difference:+.2f}",
                             "—" if c.low is None else f"[{c.low:+.2f}, {c.high:+.2f}]", str(c.units or "—"),
                             "—" if p.get("welch_p") is None else f"{p['welch_p']:.3f}",
                             "—" if p.get("mannwhitney_p") is None else f"{p['mannwhitney_p']:.3f}",
                             Td(c.problem or ("interval excludes 0" if c.low is not None and (c.low > 0 or c.high < 0)
                                              else ""), cls="text")])
        if not rows:
            return ""
        return ("<h3>Differences from the baseline</h3>" + table(header, rows, sortable=False)
                + '<p class="muted">Δ = mean over the transfer\'s seeds − the baseline\'s mean over the same seeds. '
                "p: Welch's t and Mann-Whitney U over the seed scores (2+ seeds each).</p>")
