"""The cross-validation study page (`blurbkit cv`, AIMed PPI as the BERT-RE paper reports it).

Per (model, budget, dataset, shared setting): each variant's (featurizer's) P / R / F1 per fold and
mean ± sample std over folds, beside the paper's F1; each variant's per-fold F1 difference from the
first one (paired over the folds both have, with the paired t-test and Wilcoxon p); every fold's F1
as a dot. Runs of one dataset with other settings (another lr, batch, budget flag) are other sections.
"""

from __future__ import annotations

import json
from typing import Any

from blurbkit.experiments import cv
from blurbkit.experiments.site.context import Site, slug
from blurbkit.experiments.site.html import Raw, Td, esc, figure, runs, table
from blurbkit.experiments.site.plots import Strip, strip_plot
from blurbkit.experiments.site.studies import STUDY_PAGES, StudyPage
from blurbkit.metrics.seeds import mean_std
from blurbkit.store.results import OK
from blurbkit.tasks.registry import get_dataset


def _ms(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def folds_by_variant(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """variant -> fold -> the fold's result (the latest finished run of that fold, else its failure)."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:  # store order: a later run of a fold replaces an earlier one; a failure never replaces a result
        result = cv.fold_row(row)
        held = out.setdefault(row["variant"], {}).get(result["fold"])
        if held is None or row["status"] == OK or held["status"] != OK:
            out[row["variant"]][result["fold"]] = result
    return out


def setting_text(setting: dict[str, Any], others: list[dict[str, Any]]) -> str:
    """What sets this setting apart from the dataset's other settings ('' when it is the only one)."""
    keys = sorted({k for o in others for k in set(o) | set(setting) if o.get(k) != setting.get(k)})
    return ", ".join(f"{k} {setting.get(k)}" for k in keys)


@STUDY_PAGES.register("cv")
class CrossValidationPage(StudyPage):
    priority = 10

    def claims(self, study: str) -> bool:
        return study == cv.STUDY

    def title(self, study: str) -> str:
        return "k-fold cross-validation"

    def build(self, site: Site, study: str, rows: list[dict[str, Any]]) -> str:
        grouped: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
        for row in rows:
            key = json.dumps(cv.shared_setting(row), sort_keys=True)
            grouped.setdefault((row["model"], row["budget"], row["dataset"]), {}).setdefault(key, []).append(row)
        parts = [f"<p>{runs(len(rows))}. Fold k is test, fold k+1 dev (epoch choice), the other folds train; the BERT-RE "
                 "paper trains on all other folds without a dev set. P / R / F1: test, % (the dataset's metric: for "
                 "AIMed micro over the positive relation); mean ± sample std over folds. A failed fold is no better "
                 "than the trivial predictor (it stays in the mean, as in the tables `blurbkit cv` prints).</p>"]
        sections = []
        for (model, budget, dataset), settings in grouped.items():
            for key, items in settings.items():
                others = [json.loads(k) for k in settings if k != key]
                sections.append((model, budget, dataset, setting_text(json.loads(key), others), items))
        sections.sort(key=lambda s: -len(s[-1]))  # the fullest cross-validation first; stray runs last
        for number, (model, budget, dataset, differs, items) in enumerate(sections):
            parts.append(self.section_html(site, model, budget, dataset, differs, items, number))
        return "\n".join(parts)

    def section_html(self, site: Site, model: str, budget: str, dataset: str, differs: str, rows: list[dict[str, Any]],
                     number: int) -> str:
        spec = get_dataset(dataset)
        name = site.names.get(model, model)
        results = folds_by_variant(rows)
        variants = list(results)
        featurizers = {r["variant"]: json.loads(r["hyperparameters"]).get("featurizer") or spec.task.featurizer for r in rows}
        folds = sorted({k for per in results.values() for k in per})
        f1 = {v: {k: r["f1"] for k, r in results[v].items() if r["status"] == OK and r["f1"] is not None} for v in variants}
        title = f"{spec.title} · {name} · budget {budget}" + (f" · {differs}" if differs else "")
        parts = [f'<h2 id="{slug(f"cv-{number}-{dataset}")}">{esc(title)}</h2>']

        header = ["variant", Td("featurizer", cls="text"), "folds", "P", "R", "F1", f"F1 − {variants[0]} (paired)",
                  "paired t p", "Wilcoxon p", Td("published F1 (BERT-RE)", cls="text")]
        summary = []
        for variant in variants:
            ok = [r for r in results[variant].values() if r["status"] == OK and r["f1"] is not None]
            paired = cv.paired_folds(f1[variants[0]], f1[variant]) if variant != variants[0] else None
            published = cv.PUBLISHED.get(spec.name, {}).get(featurizers[variant], {})
            summary.append([
                variant, Td(featurizers[variant], cls="text"), f"{len(ok)} of {len(folds)}",
                *([_ms([r[m] for r in ok if r[m] is not None]) if any(r[m] is not None for r in ok) else "—"
                   for m in ("precision", "recall", "f1")]),
                "—" if paired is None or paired["mean"] is None else f"{paired['mean']:+.2f} ± {paired['std']:.2f} (n={paired['n']})",
                _p(None if paired is None else paired["t_p"]), _p(None if paired is None else paired["wilcoxon_p"]),
                Td(", ".join(f"{m} {v:.1f}" for m, v in published.items()) or "—", cls="text"),
            ])
        parts.append(table(header, summary))
        parts.append("<h3>Per fold</h3>")

        header = ["fold", "test instances", "gold positives", *[Td(f"{v}: F1", title="P / R below") for v in variants],
                  *[f"Δ F1 {v}" for v in variants[1:]]]
        body = []
        for k in folds:
            first = results[variants[0]].get(k) or results[next(v for v in variants if k in results[v])][k]
            row: list[Any] = [str(k), str(first["n"] if first["n"] is not None else "—"),
                              str(first["positives"] if first["positives"] is not None else "—")]
            for variant in variants:
                r = results[variant].get(k)
                if r is None:
                    row.append(Td("—"))
                elif r["status"] != OK or r["f1"] is None:
                    row.append(Td(Raw('<span class="failed">errored</span>')))
                else:
                    pr = "" if r["precision"] is None else f"P {r['precision']:.2f} · R {r['recall']:.2f}"
                    mark = ' <span class="failed">failed</span>' if r["failed"] else ""
                    row.append(Td(Raw(f'{r["f1"]:.2f}{mark}<span class="sd">{pr}</span>'), sort=round(r["f1"], 4)))
            for variant in variants[1:]:
                both = k in f1[variant] and k in f1[variants[0]]
                row.append("—" if not both else f"{f1[variant][k] - f1[variants[0]][k]:+.2f}")
            body.append(row)
        parts.append(table(header, body))

        strips = []
        for variant in variants:
            published = cv.PUBLISHED.get(spec.name, {}).get(featurizers[variant], {})
            errored = sum(r["status"] != OK for r in results[variant].values())
            strips.append(Strip(variant, [f1[variant][k] for k in sorted(f1[variant])], errored, dict(published)))
        file, src = site.img(f"cv-{number}-{slug(dataset)}.svg")
        strip_plot(file, strips, f"{spec.title}, {len(folds)} fold(s): test F1 per fold", "test F1 (%)", dots="fold")
        parts.append(figure(src, "Every fold's test F1 (dots), the mean over folds (bar), the BERT-RE paper's F1 "
                            "for that featurizer (ticks).", f"fold F1 of {spec.title}"))
        if budget != "full":
            parts.append(f'<p class="muted">Budget {esc(budget)}: a training subsample and few epochs on a CPU; '
                         "compare directions, not the paper's values.</p>")
        return "\n".join(parts)
