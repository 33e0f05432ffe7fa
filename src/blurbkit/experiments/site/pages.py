"""The leaderboard (index), a page per model and per dataset."""

from __future__ import annotations

import json
from typing import Any

from blurbkit.experiments.leaderboard import Cell, Entry, references
from blurbkit.experiments.site.context import Site
from blurbkit.experiments.site.html import Raw, Td, esc, figure, link, notice, table
from blurbkit.experiments.site.plots import Curve, Strip, learning_curves, strip_plot
from blurbkit.tasks.blurb_score import blurb_groups
from blurbkit.tasks.registry import get_dataset

SUBSAMPLE, DEVIATION, TRIVIAL = "s", "†", "!"


def short(group: str) -> str:
    """A task-type column's header: its initials when it has several words (the full name in the tooltip)."""
    words = group.split()
    return "".join(w[0].upper() for w in words) if len(words) > 1 else group


def _datasets() -> list[str]:
    return [name for names in blurb_groups().values() for name in names]


def score_cell(cell: Cell | None) -> Td:
    """mean, ± std · n, flags for subsamples (s) and other deviations (†), failed runs in red."""
    if cell is None:
        return Td("—")
    failed = f'<span class="failed">{len(cell.failed)} failed</span>' if cell.failed else ""
    if cell.mean is None:
        return Td(Raw(failed or "—"), cls="failed" if failed else "", title="; ".join(r.get("error") or "" for r in cell.failed))
    flags = cell.flags()
    marks = "".join(f'<span class="flag">{mark}</span>' for mark, key in ((SUBSAMPLE, "subsample"), (DEVIATION, "deviation"))
                    if flags[key])
    detail = f"± {cell.std:.2f} · n={cell.n}" + (f" · {failed}" if failed else "")
    trivial = cell.trivial_failures()
    if trivial:
        marks += (f'<span class="flag failed" title="{trivial} of {cell.n} runs no better than the trivial predictor">'
                  f"{TRIVIAL}</span>")
    title = "\n".join(cell.notes)
    return Td(Raw(f"{cell.mean:.2f}{marks}<span class=\"sd\">{detail}</span>"), sort=round(cell.mean, 4), title=title)


def _number(value: float | None, bold: bool = False) -> Td:
    if value is None:
        return Td("—", title="needs every dataset of the group")
    text = f"<strong>{value:.2f}</strong>" if bold else f"{value:.2f}"
    return Td(Raw(text), sort=round(value, 4))


def leaderboard_page(site: Site, studies: list[tuple[str, str]], comparisons: list[tuple[str, str]]) -> None:
    datasets, groups = _datasets(), list(blurb_groups())
    header: list[Any] = ["model", Td("protocol", cls="text"), Td("BLURB", title="BLURB score: mean of the six task-type averages"),
                         *[Td(short(g), title=f"{g} average: {', '.join(get_dataset(n).title for n in blurb_groups()[g])}")
                           for g in groups],
                         *[get_dataset(n).title for n in datasets], Td("failed runs", title="runs stored as failed")]
    rows, classes = [], []
    for entry in site.entries:
        averages = entry.group_averages()
        failed = entry.failed_count()
        rows.append([link(f"{site.model_page(entry.model)}#{site.entry_anchor(entry)}", site.names[entry.model]),
                     Td(entry.protocol, cls="text"), _number(entry.blurb(), bold=True),
                     *[_number(averages[g]) for g in groups], *[score_cell(entry.cells.get(n)) for n in datasets],
                     Td(Raw(f'<span class="failed">{failed}</span>' if failed else "0"), sort=failed)])
        classes.append("")
    for ref in references():
        averages = ref.group_averages()
        rows.append([Td(Raw(f'{esc(ref.model)} <span class="badge pub">published</span>')),
                     Td("paper (full grid)", cls="text"), _number(ref.blurb(), bold=True),
                     *[_number(averages[g]) for g in groups], *[_number(ref.scores[n]) for n in datasets], Td("")])
        classes.append("published")
    body = []
    if not site.entries:
        what = "no runs at all" if not site.rows else "no benchmark runs (only studies)"
        body.append(notice(f"This store holds {what}: the leaderboard has only the published rows. "
                           "Fill it with `blurbkit benchmark`.", bad=not site.rows))
    body.append('<p>Test scores (%) per dataset: mean over seeds, with the sample standard deviation and the number of '
                'seeds below. Click a column header to sort. Shaded rows are the papers\' published results (SPEC §7), '
                'not runs of this store.</p>')
    body.append(table(header, rows, sortable=True, row_classes=classes, table_id="leaderboard"))
    body.append(f'<p class="muted"><span class="flag">{SUBSAMPLE}</span> budget run: trained or tested on a seeded '
                f'subsample (hover for the exact note). <span class="flag">{DEVIATION}</span> another note on how the run '
                'or its data departs from the protocol (e.g. EBM PICO trained on dev abstracts, inputs truncated below '
                'the protocol length, a distributed file that differs from the published counts). '
                f'<span class="flag failed">{TRIVIAL}</span> a run no better than the trivial predictor (majority '
                'class, no entity, constant prediction) on the same test records. '
                'Protocols: quick = the small CPU budget; default = each dataset\'s recipe on all data; '
                'full grid = the SPEC §2 search on dev, then the test seeds.</p>')
    body.append("<h2 id=\"datasets\">Datasets</h2><ul class=\"cols\">" + "".join(
        f"<li>{link(site.dataset_page(n), get_dataset(n).title).html}</li>" for n in datasets) + "</ul>")
    if studies:
        body.append("<h2 id=\"studies\">Studies</h2><ul>" + "".join(f"<li>{link(href, title).html}</li>" for href, title in studies) + "</ul>")
    if comparisons:
        body.append("<h2 id=\"compare\">Is the difference real?</h2><ul>"
                    + "".join(f"<li>{link(href, title).html}</li>" for href, title in comparisons) + "</ul>")
    site.write("index.html", "BLURB leaderboard", "\n".join(body), sort=True)


# -- per model ---------------------------------------------------------------------------------------

def _run_table(site: Site, runs: list[dict[str, Any]]) -> str:
    header = ["dataset", "seed", "status", "test", "dev", "best epoch", "wall s", "data sha256 (test)", "commit",
              Td("configuration and versions", cls="text")]
    rows = []
    for row in runs:
        info = site.run(row)
        metrics = json.loads(row.get("test_metrics") or "{}")
        sha = (info.get("data_sha256") or {}).get("test", "")
        status = row["status"] if row["status"] != "ok" else ("trivial" if get_dataset(row["dataset"]).task.run_failed(metrics) else "ok")
        config = json.loads(row["hyperparameters"])
        details = {"hyperparameters (run key)": config}
        if info.get("resolved"):
            details["resolved"] = {k: v for k, v in info["resolved"].items() if k != "recipe"}
        if info.get("versions"):
            details["versions"] = info["versions"]
        if row.get("error"):
            details["error"] = row["error"]
        where = f"run directory: {info['_dir']}" if info.get("_dir") else "run directory: not found here"
        block = (f"<details><summary>show</summary><pre>{esc(json.dumps(details, indent=1, sort_keys=True))}</pre>"
                 f'<span class="muted">{esc(where)}</span></details>')
        rows.append([link(site.dataset_page(row["dataset"]), get_dataset(row["dataset"]).title), str(row["seed"]),
                     Td(Raw(f'<span class="failed">{esc(status)}</span>' if status != "ok" else "ok"),
                        title=row.get("error") or ""),
                     "—" if row["test_score"] is None else f"{100 * row['test_score']:.2f}",
                     "—" if row["dev_score"] is None else f"{100 * row['dev_score']:.2f}",
                     str((info.get("_metrics") or {}).get("best_epoch", "—")),
                     "—" if row.get("wall_seconds") is None else f"{row['wall_seconds']:.0f}",
                     Td(sha[:12] or "—", title=sha), (row.get("blurbkit_commit") or "—")[:10], Td(Raw(block), cls="text")])
    return table(header, rows)


def _entry_section(site: Site, entry: Entry) -> str:
    name = site.names[entry.model]
    refs = {ref.model: ref.scores for ref in references()}
    datasets = [n for n in _datasets() if n in entry.cells]
    grid = bool(entry.chosen)  # the full grid: which point dev chose, per dataset
    header = ["dataset", "test mean", "seeds", "failed", "wall s (sum)", *([Td("chosen on dev", cls="text")] if grid else []),
              Td("notes", cls="text")]
    rows = []
    for n in datasets:
        cell = entry.cells[n]
        chosen = entry.chosen.get(n)
        point = (f"lr {chosen['lr']:g}, batch {chosen['batch_size']}, {chosen['epochs']} epochs (dev {100 * chosen['dev']:.2f})"
                 if chosen else "")
        rows.append([link(site.dataset_page(n), get_dataset(n).title), score_cell(cell),
                     ", ".join(f"{s:.2f}" for s in cell.scores) or "—",
                     Td(Raw(f'<span class="failed">{len(cell.failed)}</span>' if cell.failed else "0")),
                     f"{cell.wall_seconds:.0f}", *([Td(point, cls="text")] if grid else []),
                     Td("; ".join(cell.notes) + (f" ({cell.superseded} runs of other settings left out: the latest run's setting is shown)" if cell.superseded else ""),
                        cls="text")])
    blurb = entry.blurb()
    parts = [f'<h2 id="{site.entry_anchor(entry)}">{esc(entry.protocol)}</h2>',
             f"<p>BLURB score: <strong>{blurb:.2f}</strong></p>" if blurb is not None else
             f"<p>BLURB score: — ({len(entry.means())} of 13 datasets have a finished run)</p>",
             table(header, rows)]
    file, src = site.img(f"seeds-{site.model_page(entry.model)[:-5]}-{site.entry_anchor(entry)}.svg")
    strip_plot(file, [Strip(get_dataset(n).title, entry.cells[n].scores, len(entry.cells[n].failed),
                            {m: refs[m][n] for m in refs}) for n in datasets],
               f"{name} ({entry.protocol}): test score per seed")
    parts.append(figure(src, "Every seed's test score (dots), their mean (bar) and the papers' published values (ticks).",
                        f"seed scores of {name}"))
    panels: dict[str, list[Curve]] = {}
    missing = 0
    for n in datasets:
        for row in entry.cells[n].runs:
            curve = site.curve(row, f"seed {row['seed']}")
            if curve is None:
                missing += 1
            else:
                panels.setdefault(get_dataset(n).title, []).append(curve)
    if panels:
        file, src = site.img(f"curves-{site.model_page(entry.model)[:-5]}-{site.entry_anchor(entry)}.svg")
        learning_curves(file, panels, f"{name} ({entry.protocol}): dev score after each epoch")
        parts.append(figure(src, "Dev score after every epoch (epochs.jsonl of each run directory)"
                            + (f"; {missing} runs without a run directory here." if missing else "."), f"learning curves of {name}"))
    elif missing:
        parts.append(notice(f"No learning curves: none of the {missing} run directories is here (the store keeps their "
                            "paths; build the report where they are)."))
    runs = [r for n in datasets for r in entry.cells[n].runs + entry.cells[n].failed]
    parts.append(f"<h3>Runs ({len(runs)})</h3>" + _run_table(site, runs))
    return "\n".join(parts)


def model_pages(site: Site) -> None:
    for model in dict.fromkeys(e.model for e in site.entries):
        entries = [e for e in site.entries if e.model == model]
        body = [f'<p class="muted">store label: {esc(model)}</p>',
                "<p>Protocols: " + ", ".join(f'<a href="#{site.entry_anchor(e)}">{esc(e.protocol)}</a>' for e in entries) + "</p>"]
        body += [_entry_section(site, e) for e in entries]
        site.write(site.model_page(model), site.names[model], "\n".join(body))


# -- per dataset ----------------------------------------------------------------------------------------

def dataset_pages(site: Site) -> None:
    refs = references()
    for name in _datasets():
        spec = get_dataset(name)
        entries = [e for e in site.entries if name in e.cells]
        header = ["model", Td("protocol", cls="text"), "test mean", Td("seeds", cls="text"), "failed", "wall s (sum)",
                  Td("notes", cls="text")]
        rows, classes = [], []
        for entry in entries:
            cell = entry.cells[name]
            rows.append([link(f"{site.model_page(entry.model)}#{site.entry_anchor(entry)}", site.names[entry.model]),
                         Td(entry.protocol, cls="text"), score_cell(cell),
                         Td(", ".join(f"{s:.2f}" for s in cell.scores) or "—", cls="text"),
                         Td(Raw(f'<span class="failed">{len(cell.failed)}</span>' if cell.failed else "0")),
                         f"{cell.wall_seconds:.0f}", Td("; ".join(cell.notes), cls="text")])
            classes.append("")
        for ref in refs:
            rows.append([Td(Raw(f'{esc(ref.model)} <span class="badge pub">published</span>')), Td("paper", cls="text"),
                         Td(f"{ref.scores[name]:.2f}", sort=ref.scores[name]), "", "", "", ""])
            classes.append("published")
        published = ", ".join(f"{k} {v}" for k, v in spec.published.items()) if spec.published else ""
        body = [f"<p>{esc(spec.task.title)} · metric {esc(spec.metric)}"
                + (f" · published split sizes: {esc(published)} {esc(spec.task.unit)}" if published else "") + "</p>"]
        if not entries:
            body.append(notice("No run of this dataset is in the store."))
        body.append(table(header, rows, sortable=True, row_classes=classes))
        if entries:
            file, src = site.img(f"seeds-{site.dataset_page(name)[:-5]}.svg")
            strip_plot(file, [Strip(site.entry_label(e), e.cells[name].scores, len(e.cells[name].failed),
                                    {r.model: r.scores[name] for r in refs}) for e in entries],
                       f"{spec.title}: test score per seed")
            body.append(figure(src, "Every seed's test score (dots), their mean (bar), the papers' values (ticks).",
                               f"seed scores on {spec.title}"))
            panels: dict[str, list[Curve]] = {}
            for entry in entries:
                for row in entry.cells[name].runs:
                    curve = site.curve(row, f"seed {row['seed']}")
                    if curve is not None:
                        panels.setdefault(site.entry_label(entry), []).append(curve)
            if panels:
                file, src = site.img(f"curves-{site.dataset_page(name)[:-5]}.svg")
                learning_curves(file, panels, f"{spec.title}: dev score after each epoch")
                body.append(figure(src, "Dev score after every epoch, per model and protocol.", f"learning curves on {spec.title}"))
        site.write(site.dataset_page(name), spec.title, "\n".join(body), sort=True)
