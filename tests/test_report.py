"""`blurbkit report`: the site of a store made in the test (every page, the leaderboard's rows and
cells, failed runs shown as failed, studies only where the store has them), and bad stores as one line."""

from __future__ import annotations

import re
import sqlite3
import threading
import urllib.request

import pytest
from report_store import MINILM, make_store

from blurbkit.cli.main import main
from blurbkit.experiments.leaderboard import leaderboard, load_stores
from blurbkit.store.results import ResultsStore, RunKey


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = make_store(root)
    out = root / "site"
    assert main(["report", "--store", str(store), "--out", str(out), "--replicates", "200"]) == 0
    return store, out


@pytest.mark.slow
def test_leaderboard_rows_cells_and_blurb_score(site):
    store, _ = site
    entries = leaderboard(load_stores([store]))
    assert [(e.model == MINILM, e.protocol) for e in entries] == [(True, "quick"), (False, "quick")]
    best, behind = entries
    assert best.cells["bc5chem"].n == 3 and behind.cells["bc5chem"].n == 2
    # The BLURB score from the stored rows by hand: seed means, then the six task types' averages, then their mean.
    types = [["bc5chem", "bc5disease", "ncbi_disease", "bc2gm", "jnlpba"], ["ebm_pico"], ["chemprot", "ddi", "gad"],
             ["biosses"], ["hoc"], ["pubmedqa", "bioasq"]]
    with sqlite3.connect(store) as db:
        for entry in entries:
            rows = db.execute("SELECT dataset, avg(test_score) FROM runs WHERE study = 'benchmark' AND model = ? "
                              "AND status = 'ok' GROUP BY dataset", (entry.model,)).fetchall()
            mean = {dataset: 100 * score for dataset, score in rows}
            by_hand = sum(sum(mean[d] for d in group) / len(group) for group in types) / len(types)
            assert entry.blurb() == pytest.approx(by_hand, abs=1e-9)
    assert behind.blurb() == pytest.approx(best.blurb() - 8, abs=2)
    assert [r["seed"] for r in behind.cells["ddi"].failed] == [2] and behind.failed_count() == 1
    assert best.cells["ebm_pico"].flags()["deviation"] == ["LOCAL DEVIATION: train = 200 dev abstracts"]


@pytest.mark.slow
def test_site_pages_links_and_marks(site):
    _, out = site
    pages = {p.name for p in out.glob("*.html")}
    assert {"index.html", "study-optimization.html", "dataset-bc5chem.html"} <= pages
    assert sum(name.startswith("model-") for name in pages) == 2 and sum(name.startswith("compare-") for name in pages) == 1
    assert not any(name.startswith("study-stability") for name in pages)  # no rows, no page
    index = (out / "index.html").read_text("utf-8")
    assert index.count('class="published"') == 3 and "PubMedBERT" in index and "81.10" in index
    assert '<span class="failed">1 failed</span>' in index
    assert "<script>" in index and "http" not in re.sub(r'href="[^"]*"', "", index).replace("http-equiv", "")
    for page in out.glob("*.html"):
        for target in re.findall(r'(?:href|src)="(?![a-z]+:)([^"#]+)', page.read_text("utf-8")):
            assert (out / target).is_file(), f"{page.name} -> {target}"
    model = next(out.glob("model-tiny-bert-*.html")).read_text("utf-8")
    assert "out of memory while training" in model and "img/curves-" in model
    compare = next(out.glob("compare-*.html")).read_text("utf-8")
    assert "no test predictions in the run directory" in compare
    study = (out / "study-optimization.html").read_text("utf-8")
    assert "no-bias-correction" in study and "92.64" in study  # the paper's Table 3 cell beside ours
    svg = next((out / "img").glob("seeds-*.svg")).read_text("utf-8")
    assert svg.startswith("<?xml") and "<image" not in svg


@pytest.mark.slow
def test_serve_answers_on_localhost(site):
    from blurbkit.cli.report import make_server

    server = make_server(site[1], 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # Straight to loopback: a CI machine's http_proxy (without 127.0.0.1 in no_proxy) must not see it.
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{server.server_address[1]}/index.html", timeout=10) as reply:
            assert reply.status == 200 and b"BLURB leaderboard" in reply.read()
    finally:
        server.shutdown()
        server.server_close()


def test_empty_store_gives_a_marked_page(tmp_path, capsys):
    ResultsStore(tmp_path / "empty.sqlite").close()
    assert main(["report", "--store", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert "This store holds no runs at all" in index and 'class="notice bad"' in index


@pytest.mark.parametrize("case, message", [
    ("newer", "results store has schema version 99, newer than this blurbkit's 2; upgrade blurbkit"),
    ("missing", "no results store here (file not found)"),
    ("garbage", "not a readable results store (file is not a database)"),
    ("foreign-out", "exists and is not a blurbkit report; choose a new or empty --out"),
])
def test_bad_stores_and_outputs_are_one_line(case, message, tmp_path, capsys):
    store, out = tmp_path / "results.sqlite", tmp_path / "site"
    ResultsStore(store).close()
    if case == "newer":
        with sqlite3.connect(store) as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    elif case == "missing":
        store = tmp_path / "nowhere.sqlite"
    elif case == "garbage":
        store = tmp_path / "garbage.sqlite"
        store.write_text("not sqlite at all, but long enough to be read as a header " * 4)
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    assert main(["report", "--store", str(store), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert case == "foreign-out" or not out.exists()


# -- in a real browser: headless Debian Chromium driven by Playwright (no browser download) --------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    import os

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (./setup.sh installs it)")
    if not os.access(CHROMIUM, os.X_OK):
        message = f"no Chromium at {CHROMIUM} (./setup.sh installs Debian's chromium when it can)"
        if os.environ.get("CI"):  # as the data fixture: in CI a missing browser fails instead of skipping
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(site):
    from blurbkit.cli.report import make_server

    server = make_server(site[1], 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _open(browser, url: str, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    return page, problems


@pytest.mark.browser
@pytest.mark.slow
def test_leaderboard_sorts_by_blurb_score_in_the_browser(browser, served, tmp_path):
    page, problems = _open(browser, served + "index.html")
    first = page.locator("#leaderboard tbody tr td:first-child")
    before = first.all_inner_texts()
    page.locator("#leaderboard thead th", has_text="BLURB").click()
    after = first.all_inner_texts()
    blurb = [float(v) for v in page.locator("#leaderboard tbody tr td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => c.getAttribute('data-sort'))")]
    assert after != before and blurb == sorted(blurb, reverse=True)
    assert after[0].startswith("PubMedBERT")  # 81.10 beats the test store's made-up models
    page.locator("#leaderboard thead th", has_text="BLURB").click()
    assert first.all_inner_texts()[0] != after[0]  # a second click: ascending
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    # Phone width: the page does not overflow sideways; the wide table scrolls in its own box.
    phone, _ = _open(browser, served + "index.html", width=390)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert not problems


@pytest.mark.browser
@pytest.mark.slow
def test_every_page_and_link_resolves_without_console_errors(browser, served):
    page, problems = _open(browser, served + "index.html")  # one tab for every page: its listeners see them all
    seen, queue = set(), ["index.html"]
    ids: dict[str, set[str]] = {}
    anchors: list[tuple[str, str, str]] = []  # (from page, to page, fragment)
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        before = len(problems)
        page.goto(served + name, wait_until="load")
        problems[before:] = [f"{name}: {p}" for p in problems[before:]]
        links = page.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        images = page.locator("img").evaluate_all("imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])")
        ids[name] = set(page.locator("[id]").evaluate_all("nodes => nodes.map(n => n.id)"))
        for src, width in images:
            assert width > 0, f"{name}: picture {src} did not load"
        for href in links:
            target, _, fragment = href.partition("#")
            target = target or name
            assert not re.match(r"[a-z]+:", target), f"{name}: link {href} leaves the site"
            queue.append(target)
            if fragment:
                anchors.append((name, target, fragment))
    assert len(seen) >= 18 and not problems, problems
    missing = [f"{origin} -> {target}#{fragment}" for origin, target, fragment in anchors if fragment not in ids[target]]
    assert not missing, missing
    with page.expect_console_message():  # the listener does see errors (so this test can fail)
        page.evaluate("console.error('probe')")
    assert problems == ["console error: probe"]


def test_full_grid_cells_hold_the_test_seeds_of_the_point_dev_chose(tmp_path):
    import json

    store = ResultsStore(tmp_path / "results.sqlite")
    # Two points searched with seeds 0-1; the second has the better mean dev score and got test seeds 2-4.
    for lr, dev, seeds in ((1e-5, 0.50, range(2)), (3e-5, 0.60, range(5))):
        for seed in seeds:
            hyper = json.dumps({"lr": lr, "batch_size": 16, "epochs": 3})
            key = RunKey("protocol", "grid", MINILM, "gad", seed, "full", hyper)
            store.add(key, {"metric": "relation_micro_f1", "test": {"score": lr * 10_000 + seed / 100},
                            "dev": {"score": dev + seed / 1000}}, "c", None)
    (entry,) = leaderboard(load_stores([tmp_path / "results.sqlite"]))
    assert entry.protocol == "full grid" and entry.chosen["gad"]["lr"] == 3e-5
    assert [r["seed"] for r in entry.cells["gad"].runs] == [0, 1, 2, 3, 4]


def test_the_leaderboard_ranks_a_grid_point_with_a_failed_selection_run_last():
    import json

    from blurbkit.experiments.leaderboard import _chosen_rows

    def row(lr, seed, dev, status="ok"):
        return {"hyperparameters": json.dumps({"lr": lr, "batch_size": 16, "epochs": 3}), "seed": seed,
                "dev_score": dev, "status": status}

    rows = [row(1e-5, 0, 0.5), row(1e-5, 1, 0.5), row(5e-5, 0, 0.9), row(5e-5, 1, None, "failed"),
            row(1e-5, 2, 0.6)]  # seed 2: a test seed of the chosen point only
    chosen, point = _chosen_rows(rows)
    assert point["lr"] == 1e-5 and point["dev"] == 0.5 and len(chosen) == 3
    chosen, point = _chosen_rows(rows[:3] + [row(5e-5, 1, 0.8)])  # both seeds finished: 5e-5 wins again
    assert point["lr"] == 5e-5 and point["dev"] == pytest.approx(0.85)
    tied = [row(5e-5, 0, 0.7), row(5e-5, 1, 0.7), row(1e-5, 0, 0.7), row(1e-5, 1, 0.7)]  # stored 5e-5 first
    assert _chosen_rows(tied)[1]["lr"] == 1e-5  # a tie goes to the first point in grid order, as `choose` does


def test_the_results_csv_counts_failed_runs_and_lists_a_dataset_whose_every_run_failed(tmp_path):
    import csv

    from blurbkit.experiments.report import write_report

    cell = {"mean": 60.0, "std": 1.0, "n": 4, "wall_seconds": 10.0}
    (tmp_path / "t.png").write_bytes(b"an earlier table's plot")
    write_report(tmp_path, "t", "table", {}, {"ddi": 2})
    assert not (tmp_path / "t.png").exists()  # no plot of another run left beside this table
    write_report(tmp_path, "t", "table", {"gad": cell}, {"gad": 1, "ddi": 2})
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [(r["dataset"], r["n"], r["failed"]) for r in rows] == [("gad", "4", "1"), ("ddi", "0", "2")]
    assert rows[1]["mean"] == "" and (tmp_path / "t.png").exists()


def test_a_cell_never_averages_runs_of_different_settings():
    import json

    from blurbkit.experiments.leaderboard import leaderboard

    def row(seed, score, lr, study="benchmark", **extra):
        options = {"lr": lr, **extra}
        return {"model": "m", "study": study, "budget": "quick", "dataset": "gad", "seed": seed, "status": "ok",
                "test_score": score, "dev_score": score, "hyperparameters": json.dumps(options, sort_keys=True),
                "run_key": f"{study}{seed}{options}", "notes": "[]", "wall_seconds": 1.0}

    rows = [row(0, 0.82, 5e-5), row(1, 0.81, 5e-5), row(2, 0.83, 5e-5), row(0, 0.60, 1e-5)]  # then again at 1e-5
    (entry,) = leaderboard(rows)
    cell = entry.cells["gad"]
    assert cell.scores == [60.0] and cell.superseded == 3  # the latest setting alone, the others counted
    grid = [row(s, 0.7, lr, "protocol", epochs=3, batch_size=16, max_length=m) for m in (128, 64) for lr in (1e-5, 3e-5)
            for s in range(2)]
    (entry,) = leaderboard(grid)
    assert {json.loads(r["hyperparameters"])["max_length"] for r in entry.cells["gad"].runs} == {64}
    assert entry.cells["gad"].superseded == 4  # the max-length-128 sweep's runs


def test_display_names_tell_every_model_apart():
    from blurbkit.experiments.leaderboard import display_names
    from blurbkit.models.loading import DEFAULT_STORE_LABEL

    labels = [DEFAULT_STORE_LABEL, "/w/exp1/pretrain/final", "/w/exp2/pretrain/final", "/w/a/mymodel", "/w/b/other"]
    names = display_names(labels)
    assert len(set(names.values())) == len(labels)
    assert names["/w/exp1/pretrain/final"] == "exp1/pretrain/final" and names["/w/a/mymodel"] == "mymodel"
    assert names[DEFAULT_STORE_LABEL] == DEFAULT_STORE_LABEL


def test_the_latest_setting_is_the_one_stored_last_not_the_first_row_of_the_store():
    import json

    from blurbkit.experiments.leaderboard import latest_setting

    def row(seed, lr, when):
        return {"seed": seed, "hyperparameters": json.dumps({"lr": lr}), "created_at": when}

    # lr 5e-5 run, then lr 1e-5, then 5e-5 again with --force: its rows keep their early place in the store
    rows = [row(0, 5e-5, "2026-12-01T12:00:00"), row(0, 1e-5, "2026-12-01T13:00:00")]
    rows[0]["created_at"] = "2026-12-01T14:00:00"
    kept, left_out = latest_setting(rows)
    assert [json.loads(r["hyperparameters"])["lr"] for r in kept] == [5e-5] and left_out == 1
