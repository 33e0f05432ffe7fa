"""The layer-probing page (`blurbkit probe`, BERT-RE Fig. 1/4): per encoder, dataset, budget and
probe setting, score(l) per depth, Δ_l = score(l) − score(l−1) and the full-depth probe's α over
layers 0..L as a table and the probe's own three-panel plot (analysis/probe_study.py)."""

from __future__ import annotations

from typing import Any

from blurbkit.analysis.probe_results import STUDY, probe_figure, probe_sections
from blurbkit.experiments.site.context import Site, slug
from blurbkit.experiments.site.html import Raw, Td, esc, figure, notice, table
from blurbkit.experiments.site.plots import save_figure
from blurbkit.experiments.site.studies import STUDY_PAGES, StudyPage
from blurbkit.tasks.registry import get_dataset


def _signed(value: float | None) -> Td:
    if value is None:
        return Td("—")
    cls = "gain" if value > 0 else "loss" if value < 0 else ""
    return Td(Raw(f'<span class="{cls}">{value:+.2f}</span>'), sort=round(value, 4))


@STUDY_PAGES.register("probe")
class ProbePage(StudyPage):
    priority = 10

    def claims(self, study: str) -> bool:
        return study == STUDY

    def title(self, study: str) -> str:
        return "layer probing with scalar mixing"

    def build(self, site: Site, study: str, rows: list[dict[str, Any]]) -> str:
        parts = [f"<p>{len(rows)} probes. The encoder is frozen; for each depth l a probe (softmax-weighted scalar mix "
                 "α of layers 0..l, a scale γ, a small MLP and the task's head) is trained on the task, its epoch chosen "
                 "on dev, and scored on test with the official metric (%, mean ± sample std over probe seeds). "
                 "Δ_l = score(l) − score(l−1) is what layer l adds to layers 0..l−1; α: the full-depth probe's "
                 "weights (mean over seeds). The BERT-RE paper finds Δ_L &gt; 0: the last layer adds knowledge.</p>"]
        for number, info in enumerate(probe_sections(rows)):
            parts.append(self.section_html(site, info, number))
        return "\n".join(parts)

    def section_html(self, site: Site, info: dict[str, Any], number: int) -> str:
        spec = get_dataset(info["dataset"])
        name = site.names.get(info["model"], info["model"])
        settings = info["settings"]
        title = f"{spec.title} · {name} · {settings.get('pool')} pooling · budget {info['budget']}"
        parts = [f'<h2 id="{slug(f"probe-{number}-{spec.name}")}">{esc(title)}</h2>']
        summary = info["summary"]
        alphas = summary[-1]["alphas"]
        header = ["layer l", "test score", Td("Δ_l", title="score(l) − score(l−1)"), "dev score",
                  Td("α_l (full depth)", title="the full-depth probe's softmax weight of layer l")]
        body = []
        for row in summary:
            label = f"{row['depth']} (embeddings)" if row["depth"] == 0 else str(row["depth"])
            body.append([label, Td(Raw(f"{row['test_mean']:.2f}<span class=\"sd\">± {row['test_std']:.2f} · "
                                       f"n={row['seeds']}</span>"), sort=round(row["test_mean"], 4)),
                         _signed(row["delta"]), f"{row['dev_mean']:.2f}",
                         f"{alphas[row['depth']]:.3f}" if row["depth"] < len(alphas) else "—"])
        parts.append(table(header, body))
        if not info["complete"]:
            parts.append(notice(f"Not every depth 0..{info['layers']} is stored: Δ is taken between the depths shown."))
        last = summary[-1]
        if last["delta"] is not None:
            verdict = "adds to" if last["delta"] > 0 else "does not add to"
            parts.append(f"<p>Last layer: Δ_{last['depth']} = {last['delta']:+.2f} (seed std at l = {last['depth']}: "
                         f"{last['test_std']:.2f}): layer {last['depth']} {verdict} what layers 0..{last['depth'] - 1} "
                         f"give the probe; its α is {alphas[-1]:.3f} of {len(alphas)} layers.</p>")
        file, src = site.img(f"probe-{number}-{slug(spec.name)}.svg")
        save_figure(probe_figure({**info, "model": name}), file)
        parts.append(figure(src, "Left: score(l) with its seed spread; middle: Δ_l (blue a gain, orange a loss); right: "
                            "the full-depth probe's α per layer (0 = embeddings).", f"probing curves on {spec.title}"))
        described = ", ".join(f"{k} {v}" for k, v in sorted(settings.items()))
        parts.append(f'<p class="muted">Probe: {esc(described)}. Hardware: {esc(info.get("hardware") or "not recorded")}. '
                     f"Metric: {esc(info['metric'])}.</p>")
        if info["notes"]:
            parts.append('<details><summary>run notes (subsamples, data)</summary><ul class="muted">'
                         + "".join(f"<li>{esc(n)}</li>" for n in info["notes"]) + "</ul></details>")
        return "\n".join(parts)
