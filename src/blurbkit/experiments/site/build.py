"""`blurbkit report`: the static site of one or more results stores, written whole (atomic_dir)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.compare import HEADER, REPLICATES, GoldCache, compare, comparison_rows
from blurbkit.experiments.leaderboard import LEADERBOARD_STUDIES, display_names, leaderboard, load_stores
from blurbkit.experiments.site.context import Site, slug
from blurbkit.experiments.site.html import Td, esc, figure, runs, table
from blurbkit.experiments.site.pages import dataset_pages, leaderboard_page, model_pages
from blurbkit.experiments.site.plots import interval_plot
from blurbkit.experiments.site.studies import study_pages
from blurbkit.fileio import atomic_dir, check_replaceable, clean_stale
from blurbkit.tasks.registry import all_datasets

MARKER = ".blurbkit-report"  # in every site's folder: what may be replaced by the next build


def check_out(out: Path) -> None:
    """Only an earlier report (or nothing, or an empty folder) is replaced."""
    check_replaceable(out, MARKER, "a blurbkit report")


def compare_pages(site: Site) -> list[tuple[str, str]]:
    """A page for each pair of rows of one protocol (same study and budget: the same test
    examples), different models."""
    written = []
    for a, b in itertools.combinations(site.entries, 2):
        if (a.study, a.budget) != (b.study, b.budget) or a.model == b.model:
            continue
        result = compare(a, b, replicates=site.replicates, cache=site.gold)
        name = f"compare-{slug(site.names[a.model])}-vs-{slug(site.names[b.model])}-{site.entry_anchor(a)}.html"
        title = f"{site.names[a.model]} vs {site.names[b.model]} ({a.protocol})"
        rows = comparison_rows(result)
        body = [f"<p>A = {esc(site.names[a.model])}, B = {esc(site.names[b.model])}, both under protocol "
                f"{esc(a.protocol)}. Test scores (%), mean over seeds.</p>",
                table([*HEADER[:-1], Td(HEADER[-1], cls="text")], [[*r[:-1], Td(r[-1], cls="text")] for r in rows])]
        labels = [d.dataset for d in result.datasets]
        values = [d.difference for d in result.datasets]
        intervals = [None if d.low is None else (d.low, d.high) for d in result.datasets]
        if result.blurb is not None:
            labels.append("BLURB score")
            values.append(result.blurb[0])
            intervals.append(result.blurb[1:])
        if any(v is not None for v in values):
            file, src = site.img(name.replace(".html", ".svg"))
            interval_plot(file, labels, values, intervals, f"A − B with 95% intervals ({title})", "difference (points)")
            body.append(figure(src, "Red: the interval excludes 0 (the difference is not test-set noise).", "differences"))
        body.append(f'<p class="muted">Interval: 2.5th–97.5th percentile of A − B over {site.replicates} paired bootstrap '
                    "resamples of the test units (one draw scores both models and every seed; abstracts are drawn whole "
                    "where the metric or the sentences belong to one). p: Welch's t-test and the Mann-Whitney U test over "
                    "the seed scores, where both have 2 or more seeds. The BLURB interval combines the datasets' resamples "
                    "(independent test sets) the way the score combines the datasets.</p>")
        site.write(name, title, "\n".join(body))
        written.append((name, title))
    return written


def check_links(out: Path) -> list[str]:
    """Local links and pictures of the written pages that do not resolve (should be none)."""
    import re

    broken = []
    for page in out.glob("*.html"):
        for target in re.findall(r'(?:href|src)="([^"#:]+)(?:#[^"]*)?"', page.read_text("utf-8")):
            if not (out / target).is_file():
                broken.append(f"{page.name} -> {target}")
    return broken


def build_site(stores: Sequence[str | Path], out: str | Path, data: str | Path | None = None,
               replicates: int = REPLICATES) -> Site:
    """Read the stores, write the site to `out` (replacing an earlier report there), return it."""
    out = Path(out)
    rows = load_stores(stores)  # bad stores fail here, before anything is written
    check_out(out)
    known = set(all_datasets())
    unknown = sorted({r["dataset"] for r in rows if r["dataset"] not in known})
    rows = [r for r in rows if r["dataset"] in known]
    entries = leaderboard(rows)
    names = display_names([r["model"] for r in rows])
    stamp = time.strftime("%Y-%m-%d %H:%M")
    generated = f"Built {stamp} by blurbkit report from {', '.join(Path(s).name for s in stores)} ({runs(len(rows))})."
    if unknown:
        generated += f" Left out: the runs of datasets not registered here ({', '.join(unknown)})."
    clean_stale(out)  # what a killed earlier write left beside it (and an interrupted replace's old version)
    with atomic_dir(out) as tmp:
        (tmp / "img").mkdir()
        (tmp / MARKER).write_text("a site written by blurbkit report; the next build replaces this folder\n", "utf-8")
        site = Site(tmp, rows, entries, names, generated, GoldCache(data), replicates)
        site.nav = [("index.html", "Leaderboard"), ("index.html#datasets", "Datasets")]
        if any(r["study"] not in LEADERBOARD_STUDIES for r in rows):
            site.nav.append(("index.html#studies", "Studies"))
        if len({e.model for e in entries}) > 1:
            site.nav.append(("index.html#compare", "Comparisons"))
        studies = study_pages(site)
        comparisons = compare_pages(site)
        model_pages(site)
        dataset_pages(site)
        leaderboard_page(site, studies, comparisons)
        broken = check_links(tmp)
        if broken:
            raise BlurbkitError(f"the report has links that do not resolve: {', '.join(broken[:5])}")
    site.out = out
    return site
