"""Study pages: one per study in the store, built by the registered builder that claims it.

A builder is registered by name in STUDY_PAGES and says which studies it renders (`claims`); the
most specific claiming builder (lowest `priority`) wins, and `generic` takes any study no other
builder claims, so a new kind of study shows up at once and gets its own page (a STILT heatmap,
probing curves) by registering one builder here. A study with no rows has no page.

Each page has a section per (model, budget): rows = datasets (x training size where the study
varies it), columns = variants, every cell mean ± std over seeds with failed runs counted; the
papers' published cells beside where the study has them; every seed as a dot; and each variant's
difference from the study's first variant with a paired-bootstrap 95% interval (experiments/compare.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments import ablation, stability
from blurbkit.experiments.compare import compare_cells
from blurbkit.experiments.leaderboard import LEADERBOARD_STUDIES, Cell, make_cell
from blurbkit.experiments.search_study import is_selection_variant
from blurbkit.experiments.site.context import Site
from blurbkit.experiments.site.html import Raw, Td, esc, figure, runs, table
from blurbkit.experiments.site.plots import Strip, strip_plot
from blurbkit.registry import Registry
from blurbkit.tasks.registry import get_dataset


@dataclass
class Section:
    model: str
    budget: str
    rows: list[str]  # row labels in order
    variants: list[str]  # column order
    cells: dict[tuple[str, str], Cell]
    datasets: dict[str, str]  # row label -> dataset


class StudyPage:
    """Base builder: the variant x dataset table every study has; subclasses add what theirs knows."""

    priority = 100

    def claims(self, study: str) -> bool:
        return True

    def title(self, study: str) -> str:
        return f"study {study}"

    def variant_order(self, study: str, seen: list[str]) -> list[str]:
        return seen

    def row_label(self, study: str, row: dict[str, Any]) -> str:
        return get_dataset(row["dataset"]).title

    def published_rows(self, study: str, row_label: str, dataset: str, variants: list[str]) -> list[tuple[str, list[str | None]]]:
        """(caption, cell per variant) for each published row beside this table row; none by default."""
        return []

    def cell(self, cell: Cell | None) -> Td:
        if cell is None:
            return Td("—")
        failed = f' · <span class="failed">{len(cell.failed)} errored</span>' if cell.failed else ""
        if cell.mean is None:
            return Td(Raw(f'<span class="failed">{len(cell.failed)} errored</span>'))
        trivial = cell.trivial_failures()
        entry = {"scores": cell.scores, "failed": [False] * cell.n, "errored": 0, "seconds": []}
        if trivial:
            task = get_dataset(cell.dataset).task
            entry["failed"] = [task.run_failed(json.loads(r.get("test_metrics") or "{}")) for r in cell.runs]
        stats = stability.cell_stats(entry)
        kept = "—" if math.isnan(stats["mean_ok"]) else f"{stats['mean_ok']:.2f}"
        detail = f"± {cell.std:.2f} · n={cell.n} · {trivial}/{cell.n} failed · mean of the rest {kept}{failed}"
        return Td(Raw(f"{cell.mean:.2f}<span class=\"sd\">{detail}</span>"), sort=round(cell.mean, 4),
                  title="\n".join(cell.notes))

    def sections(self, study: str, rows: list[dict[str, Any]]) -> list[Section]:
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault((row["model"], row["budget"]), []).append(row)
        out = []
        for (model, budget), items in grouped.items():
            by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
            datasets: dict[str, str] = {}
            for row in items:
                label = self.row_label(study, row)
                datasets[label] = row["dataset"]
                by_cell.setdefault((label, row["variant"]), []).append(row)
            variants = self.variant_order(study, list(dict.fromkeys(r["variant"] for r in items)))
            cells = {key: make_cell(datasets[key[0]], group) for key, group in by_cell.items()}
            out.append(Section(model, budget, list(datasets), variants, cells, datasets))
        return out

    def intro(self, study: str, rows: list[dict[str, Any]]) -> str:
        return f"<p>{runs(len(rows))}.</p>"

    def build(self, site: Site, study: str, rows: list[dict[str, Any]]) -> str:
        parts = [self.intro(study, rows)]
        for number, section in enumerate(self.sections(study, rows)):
            parts.append(self.section(site, study, section, number))
        return "\n".join(parts)

    def section(self, site: Site, study: str, section: Section, number: int) -> str:
        name = site.names.get(section.model, section.model)
        header = ["dataset", *section.variants]
        table_rows, classes = [], []
        for label in section.rows:
            table_rows.append([label, *[self.cell(section.cells.get((label, v))) for v in section.variants]])
            classes.append("")
        for label in section.rows:
            for caption, published in self.published_rows(study, label, section.datasets[label], section.variants):
                table_rows.append([Td(Raw(f'{esc(label)} <span class="badge pub">{esc(caption)}</span>')),
                                   *[p or "" for p in published]])
                classes.append("published")
        parts = [f"<h2>{esc(name)} · budget {esc(section.budget)}</h2>",
                 table(header, table_rows, sortable=False, row_classes=classes)]
        strips = [Strip(f"{label} · {v}", section.cells[(label, v)].scores, len(section.cells[(label, v)].failed))
                  for label in section.rows for v in section.variants if (label, v) in section.cells]
        if strips:
            file, src = site.img(f"study-{study}-{number}.svg")
            strip_plot(file, strips, f"{study} ({name}, {section.budget}): test score per seed")
            parts.append(figure(src, "Every seed's test score (dots) and the mean (bar) per variant.", f"seed scores of study {study}"))
        parts.append(self.differences(site, section))
        return "\n".join(parts)

    def differences(self, site: Site, section: Section) -> str:
        """Each variant against the first one: paired bootstrap over the test examples, seed tests."""
        if len(section.variants) < 2:
            return ""
        base = section.variants[0]
        header = ["dataset", "variant", f"− {base}", "95% interval", "Welch p", "Mann-Whitney p", Td("note", cls="text")]
        rows = []
        for label in section.rows:
            for variant in section.variants[1:]:
                a, b = section.cells.get((label, variant)), section.cells.get((label, base))
                if a is None or b is None:
                    continue
                result = compare_cells(section.datasets[label], a, b, site.gold, site.replicates, seed=len(rows))
                diff = result.difference if result.difference is not None else (
                    None if result.mean_a is None or result.mean_b is None else result.mean_a - result.mean_b)
                ci = "—" if result.low is None else f"[{result.low:+.2f}, {result.high:+.2f}]"
                p = result.tests or {}
                rows.append([label, variant, "—" if diff is None else f"{diff:+.2f}", ci,
                             "—" if p.get("welch_p") is None else f"{p['welch_p']:.3f}",
                             "—" if p.get("mannwhitney_p") is None else f"{p['mannwhitney_p']:.3f}",
                             Td(result.problem or ("interval excludes 0" if result.low is not None and
                                                   (result.low > 0 or result.high < 0) else ""), cls="text")])
        if not rows:
            return ""
        return (f"<h3>Differences from {esc(base)}</h3>"
                f"<p class=\"muted\">Mean over seeds; interval: {site.replicates} paired bootstrap resamples of the test "
                "examples (all seeds of both variants on each resample); p: Welch's t and Mann-Whitney U over the seed "
                "scores.</p>" + table(header, rows))


STUDY_PAGES: Registry[type[StudyPage]] = Registry("study page")


@STUDY_PAGES.register("ablation")
class AblationPage(StudyPage):
    """The modeling-choice ablations of experiments/ablation.py (published cells: SPEC §3)."""

    priority = 10

    def claims(self, study: str) -> bool:
        return study in ablation.STUDIES

    def title(self, study: str) -> str:
        return f"ablation: {ablation.STUDIES[study].title}"

    def variant_order(self, study: str, seen: list[str]) -> list[str]:
        known = [v.name for v in ablation.STUDIES[study].variants]
        return [v for v in known if v in seen] + [v for v in seen if v not in known]

    def published_rows(self, study: str, row_label: str, dataset: str, variants: list[str]) -> list[tuple[str, list[str | None]]]:
        return [(f"{source}, published", cells)
                for source, cells in ablation.published_rows(ablation.STUDIES[study], dataset, variants)]

    def intro(self, study: str, rows: list[dict[str, Any]]) -> str:
        spec = ablation.STUDIES[study]
        shown = any(ablation.published_rows(spec, row["dataset"], [row["variant"]]) for row in rows)
        note = f'\n<p class="muted">Published rows: {esc(spec.published_note)}</p>' if shown and spec.published_note else ""
        return super().intro(study, rows) + note


@STUDY_PAGES.register("stability")
class StabilityPage(StudyPage):
    """The fine-tuning stability studies of experiments/stability.py: failed runs and the mean
    without them in every cell, low-resource rows per training size, the papers' tables beside."""

    priority = 10

    def claims(self, study: str) -> bool:
        return study in stability.STUDIES

    def title(self, study: str) -> str:
        return f"stability: {stability.STUDIES[study].title}"

    def variant_order(self, study: str, seen: list[str]) -> list[str]:
        known = [v.name for v in stability.STUDIES[study].variants]
        # The search study's selection runs (NAME/select) are its grid on dev, not a test column.
        return [v for v in known if v in seen] + [v for v in seen if v not in known and not is_selection_variant(v)]

    def row_label(self, study: str, row: dict[str, Any]) -> str:
        sizes = stability.STUDIES[study].train_sizes
        size = json.loads(row["hyperparameters"]).get("max_train_examples") if sizes != (None,) else None
        return stability.row_label(row["dataset"], size)

    def published_rows(self, study: str, row_label: str, dataset: str, variants: list[str]) -> list[tuple[str, list[str | None]]]:
        published = stability.STUDIES[study].published.get(row_label, {})
        cells = [published.get(v) for v in variants]
        return [("published", cells)] if any(p is not None for p in cells) else []

    def intro(self, study: str, rows: list[dict[str, Any]]) -> str:
        spec = stability.STUDIES[study]
        notes = [f"<p>{runs(len(rows))}. A run <em>fails</em> when its test score is no better than a trivial "
                 "predictor's on the same test records; each cell gives mean ± std over all seeds, the failed count and "
                 "the mean over the rest; “errored” runs stopped with an error and have no score.</p>"]
        if spec.note:
            notes.append(f'<p class="muted">Here: {esc(spec.note)}.</p>')
        if spec.published_note:
            notes.append(f'<p class="muted">Published rows: {esc(spec.published_note)}.</p>')
        return "\n".join(notes)


@STUDY_PAGES.register("generic")
class GenericPage(StudyPage):
    """Any other study: its variant x dataset table."""


def study_pages(site: Site) -> list[tuple[str, str]]:
    """Write a page for every study with rows; (file, title) of each, for the index."""
    studies = list(dict.fromkeys(r["study"] for r in site.rows if r["study"] not in LEADERBOARD_STUDIES))
    builders = sorted((STUDY_PAGES.get(name)() for name in STUDY_PAGES.names()), key=lambda b: b.priority)
    written = []
    for study in studies:
        builder = next((b for b in builders if b.claims(study)), None)
        if builder is None:
            raise BlurbkitError(f"no page builder for study {study!r}")
        rows = [r for r in site.rows if r["study"] == study]
        title = builder.title(study)
        site.write(site.study_page(study), title, builder.build(site, study, rows), sort=False)
        written.append((site.study_page(study), title))
    return written


# The studies with pages of their own shape register their builders in these modules (imported last:
# they build on StudyPage and STUDY_PAGES above).
from blurbkit.experiments.site import cost_page, cv_page, probe_page, stilt_page  # noqa: E402, F401
