"""The report's own pages for STILT, cross-validation, layer probing and the cost table, from a store
made by hand in the test (no training): each page is built and holds the numbers the rows give."""

from __future__ import annotations

import json
import random
import re
import statistics

import pytest

from blurbkit.analysis.probe_results import STUDY as PROBE
from blurbkit.analysis.probe_results import import_probe_json, probe_sections, store_probes
from blurbkit.analysis.probing import ProbeResult, results_json
from blurbkit.experiments import cost_store, cost_table, cv, stilt
from blurbkit.experiments.site.build import build_site
from blurbkit.store.results import ResultsStore, RunKey, read_rows

MODEL = "default (MiniLM-L6-H384)"
BUDGET = "quick+train150"
STILT_SETS = ("gad", "biosses", "chemprot")


def _add(store, study, variant, dataset, seed, hyper, test, notes=(), run_dir=None, budget=BUDGET, model=MODEL):
    key = RunKey(study, variant, model, dataset, seed, budget, json.dumps(hyper, sort_keys=True))
    store.add(key, {"metric": "m", "test": test, "dev": {"score": test.get("score")}, "notes": list(notes)}, "c", run_dir)
    return key


def make_stilt(store, rng):
    """Baselines of three datasets x 3 seeds and every transfer; GAD after BIOSSES lacks seed 2."""
    scores = {}
    digests = {}
    for d in STILT_SETS:
        for seed in range(3):
            scores[(d, None, seed)] = 0.4 + 0.3 * rng.random()
            key = _add(store, "stilt", stilt.BASELINE, d, seed, {"lr": 1e-4}, {"score": scores[(d, None, seed)]},
                       notes=["BUDGET RUN: trained on a seeded subsample of 150 of 999 train records"])
            digests[(d, seed)] = key.digest()
    for source in STILT_SETS:
        for target in STILT_SETS:
            for seed in range(3):
                if source == target or (target, source, seed) == ("gad", "biosses", 2):
                    continue
                scores[(target, source, seed)] = 0.4 + 0.3 * rng.random()
                _add(store, "stilt", stilt.transfer_variant(source, digests[(source, seed)]), target, seed,
                     {"lr": 1e-4, "model": f"/runs/{source}"}, {"score": scores[(target, source, seed)]})
    return scores


CV_F1 = {"default": [20.0, 31.0, 12.5, 40.0, 25.0], "featurizer=sll_attention": [22.0, 30.0, 18.5, 47.0, 24.0]}


def make_cv(store):
    for variant, f1s in CV_F1.items():
        for fold, f1 in enumerate(f1s):
            hyper = {"fold": fold, "lr": 1e-4, "featurizer": None if variant == "default" else "sll_attention"}
            test = {"score": f1 / 100, "precision": (f1 + 10) / 100, "recall": (f1 - 5) / 100, "n": 500 + fold,
                    "n_gold": 90 + fold, "failed": False}
            _add(store, "cv", variant, "aimed", 0, hyper, test, budget="custom-train800")
    # A stray fold with another learning rate: its own section, never mixed into the folds above.
    _add(store, "cv", "default", "aimed", 0, {"fold": 0, "lr": 2e-4, "featurizer": None},
         {"score": 0.99, "precision": 0.99, "recall": 0.99, "n": 500, "n_gold": 90}, budget="custom-train800")


def probe_info(layers=2, seeds=2):
    info = {"dataset": "ddi", "metric": "relation_micro_f1", "model": "MiniLM-L6-H384 (default)", "store_model": MODEL,
            "layers": layers, "settings": {"pool": "cls", "epochs": 3, "lr": 1e-3, "batch_size": 64, "mlp_size": 32,
                                            "dropout": 0.1, "seeds": seeds},
            "max_length": 64, "precision": "bfloat16", "budget": "custom-train100", "hardware": "AMD EPYC, 2 logical CPUs",
            "notes": ["BUDGET RUN: x"], "sizes": {"train": 100, "dev": 20, "test": 20}}
    rng = random.Random(1)
    results = []
    for depth in range(layers + 1):
        for seed in range(seeds):
            raw = [rng.random() + (depth == layers) for _ in range(depth + 1)]
            alphas = [a / sum(raw) for a in raw]
            results.append(ProbeResult(depth, seed, 0.1 * depth + 0.01 * seed, 0.1 * depth ** 2 + 0.02 * seed, 2, alphas,
                                       1.0 + seed, {"score": 0.1 * depth ** 2 + 0.02 * seed}))
    return info, results


MACHINE = {"cpu": "AMD EPYC", "cpus": 2, "torch_threads": 2, "load_average": [2.1, 2.0, 1.9], "device": "cpu",
           "cpu_flags": ["avx2", "avx512_bf16"]}


def cost_rows():
    base = {"train_examples_timed": 512, "epochs_timed": 1, "train_split": 18035, "extrapolated": True, "precision": "bfloat16",
            "tokens_per_example": 65.3, "memory_at_start_mb": 381.0}
    return [{**base, "model": "MiniLM-L6-H384 (default)", "weights": "pretrained", "parameters": 22567686, "timed_seconds": 9.6,
             "epoch_seconds": 338.156, "three_epoch_seconds": 1014.469, "examples_per_second": 53.34,
             "tokens_per_second": 3484.583, "peak_memory_mb": 1887.1},
            {**base, "model": "bert-base-random (12x768)", "weights": "random (timing only)", "parameters": 108896262,
             "timed_seconds": 60.8, "epoch_seconds": 2141.656, "three_epoch_seconds": 6424.969, "examples_per_second": 8.42,
             "tokens_per_second": 550.197, "peak_memory_mb": 5721.8}]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    path = root / "runs" / "results.sqlite"
    store = ResultsStore(path)
    scores = make_stilt(store, random.Random(0))
    make_cv(store)
    _add(store, "sll", "cls+attention", "chemprot", 0, {"lr": 1e-4}, {"score": 0.5})
    _add(store, "relation", "dummy+start", "chemprot", 0, {"lr": 1e-4}, {"score": 0.5})  # no published cell of it
    store.close()
    store_probes(path, *probe_info())
    cost_store.store_costs(path, "chemprot", [MODEL, "bert-base-random (12x768)"], cost_rows(), MACHINE)
    built = build_site([path], root / "site", replicates=50)
    return built.out, scores, path


def _page(out, name):
    return (out / name).read_text("utf-8")


def _rows(html, after):
    """The cells (inner HTML) of every body row of the first table after the text `after`."""
    body = html[html.index(after):]
    body = body[body.index("<tbody>"):body.index("</tbody>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body)]


def test_every_study_has_its_own_page_and_links_resolve(site):
    out, _, _ = site
    index = _page(out, "index.html")
    for name, title in (("study-stilt.html", "STILT: intermediate-task transfer"), ("study-cv.html", "cross-validation"),
                        ("study-probe.html", "layer probing"), ("study-cost.html", "fine-tuning cost")):
        assert f'href="{name}"' in index and title in _page(out, name)
    for page in out.glob("*.html"):
        for target in re.findall(r'(?:href|src)="(?![a-z]+:)([^"#]+)', page.read_text("utf-8")):
            assert (out / target).is_file(), f"{page.name} -> {target}"


def test_stilt_cells_are_differences_from_the_baseline_on_the_same_seeds(site):
    out, scores, _ = site
    html = _page(out, "study-stilt.html")
    header = html[html.index("<thead>"):html.index("</thead>")]
    assert re.findall(r"<th[^>]*>([^<]*)</th>", header)[1:] == ["none (baseline)", "GAD", "BIOSSES", "ChemProt"]
    assert "after-" not in html  # columns and rows by dataset title, never the stored variant
    rows = {(r[0], r[1]): r for r in _rows(html, "Differences from the baseline")}
    assert len(rows) == 6
    for target, source in (("gad", "biosses"), ("chemprot", "gad")):
        seeds = [s for s in range(3) if (target, source, s) in scores]
        mean = statistics.fmean(100 * scores[(target, source, s)] for s in seeds)
        base = statistics.fmean(100 * scores[(target, None, s)] for s in seeds)
        titles = {"gad": "GAD", "biosses": "BIOSSES", "chemprot": "ChemProt"}
        row = rows[(titles[target], titles[source])]
        assert row[2:5] == [f"{mean:.2f}", f"{base:.2f}", f"{mean - base:+.2f}"]
        assert f"Δ {mean - base:+.2f}" in html
    # GAD after BIOSSES has seeds 0-1 only: its baseline is the mean of those two seeds, not of all three.
    all_three = statistics.fmean(100 * scores[("gad", None, s)] for s in range(3))
    assert rows[("GAD", "BIOSSES")][3] != f"{all_three:.2f}"
    assert "the run directory is not here" in html  # no interval without predictions, and the row says why
    assert 'src="img/stilt-heatmap-0.svg"' in html and (out / "img" / "stilt-heatmap-0.svg").is_file()
    assert "Its featurizer and head are dropped" in html and "a new cls+regression head is built" in html
    assert "Budget quick+train150: a CPU budget run" in html and "subsample of 150 of 999" in html
    published = [r[:2] for r in _rows(html, "· budget") if "published" in r[0]]
    assert [cells[1] for cells in published] == ["78.93", "82.17", "71.23", "77.28"]  # GAD, ChemProt: the paper's baselines
    assert "BERT-base, published" in published[0][0] and "Jeong &amp; Hwang" in html


def test_an_ablation_page_has_a_published_row_per_source(site):
    out, _, _ = site
    html = _page(out, "study-sll.html")
    rows = _rows(html, "· budget")
    assert [r[1][:5] for r in rows] == ["50.00", "76.3", "77.9"]  # ours, then BERT-RE's BioBERT and PubMedBERT, as printed
    assert "BioBERT, published" in rows[1][0] and "PubMedBERT, published" in rows[2][0]
    assert "Published rows: BERT-RE" in html and "<p>1 run.</p>" in html  # one run, not "1 runs"
    relation = _page(out, "study-relation.html")
    assert 'class="published"' not in relation and "Published rows" not in relation and "50.00" in relation


def test_cv_page_per_fold_scores_means_and_paired_differences(site):
    out, _, _ = site
    html = _page(out, "study-cv.html")
    summary = _rows(html, "AIMed")
    default, sll = CV_F1["default"], CV_F1["featurizer=sll_attention"]
    assert summary[0][:3] == ["default", "cls", "5 of 5"]
    assert summary[0][5] == f"{statistics.fmean(default):.2f} ± {statistics.stdev(default):.2f}"
    assert summary[0][3] == f"{statistics.fmean(f + 10 for f in default):.2f} ± {statistics.stdev(default):.2f}"
    diffs = [b - a for a, b in zip(default, sll, strict=True)]
    assert summary[1][6] == f"{statistics.fmean(diffs):+.2f} ± {statistics.stdev(diffs):.2f} (n=5)"
    from scipy import stats

    assert summary[1][7] == f"{stats.ttest_rel(sll, default).pvalue:.3f}"
    assert "PubMedBERT 83.1" in summary[1][9] and "PubMedBERT 82.1" in summary[0][9]
    folds = _rows(html, "Per fold")
    assert [r[0] for r in folds] == ["0", "1", "2", "3", "4"] and folds[3][1:3] == ["503", "93"]
    assert folds[3][-1] == f"{sll[3] - default[3]:+.2f}" and folds[3][3].startswith(f"{default[3]:.2f}")
    assert html.count("<h2") == 2 and "lr 0.0002" in html and "99.00" in html  # the stray run: its own section
    assert (out / "img" / "cv-0-aimed.svg").is_file()


def test_paired_folds_test_is_undefined_without_differences():
    same = cv.paired_folds({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert same["mean"] == 0.0 and same["t_p"] is None and same["wilcoxon_p"] is None
    assert cv.paired_folds({0: 1.0}, {1: 2.0})["n"] == 0


def test_probe_page_shows_delta_per_layer_and_full_depth_alphas(site):
    out, _, _ = site
    html = _page(out, "study-probe.html")
    info, results = probe_info()
    mean = {d: statistics.fmean(100 * r.test_score for r in results if r.depth == d) for d in range(3)}
    alphas = [statistics.fmean(a) for a in zip(*(r.alphas for r in results if r.depth == 2), strict=True)]
    rows = _rows(html, "DDI")
    assert [r[0] for r in rows] == ["0 (embeddings)", "1", "2"]
    assert rows[2][1].startswith(f"{mean[2]:.2f}") and f"{mean[2] - mean[1]:+.2f}" in rows[2][2]
    assert [r[4] for r in rows] == [f"{a:.3f}" for a in alphas]
    assert f"Δ_2 = {mean[2] - mean[1]:+.2f}" in html and "layer 2 adds to" in html
    assert (out / "img" / "probe-0-ddi.svg").is_file() and "AMD EPYC" in html


def test_probe_rows_round_trip_through_probe_json(tmp_path):
    info, results = probe_info(layers=1, seeds=3)
    (tmp_path / "probe.json").write_text(results_json(results, {k: v for k, v in info.items()
                                                                 if k not in ("store_model", "budget")}))
    imported, count = import_probe_json(tmp_path / "probe.json", tmp_path / "results.sqlite")
    rows = read_rows(tmp_path / "results.sqlite")
    assert count == len(rows) == 6 and {r["study"] for r in rows} == {PROBE}
    assert imported["store_model"] == MODEL and imported["budget"] == "custom-train100-dev20-test20"  # from the sizes
    (section,) = probe_sections(rows)
    assert section["complete"] and [s["depth"] for s in section["summary"]] == [0, 1]
    assert section["summary"][1]["alphas"] == pytest.approx([statistics.fmean(a) for a in
                                                             zip(*(r.alphas for r in results if r.depth == 1), strict=True)])
    import_probe_json(tmp_path / "probe.json", tmp_path / "results.sqlite")  # again: the same rows, replaced
    assert len(read_rows(tmp_path / "results.sqlite")) == 6


def test_cost_page_names_the_hardware(site):
    out, _, _ = site
    html = _page(out, "study-cost.html")
    rows = _rows(html, "ChemProt")
    assert [r[0] for r in rows] == ["MiniLM-L6-H384 (default)", "bert-base-random (12x768)"]
    assert rows[0][3] == cost_table.duration(338.156) == "5.6 min" and rows[1][6] == "550" and rows[0][2] == "22.6 M"
    assert "AMD EPYC (cpu; avx2, avx512_bf16), 2 logical CPUs, 2 torch thread(s), load average [2.1, 2.0, 1.9]" in html
    assert "Random rows" in html and (out / "img" / "cost-0-chemprot.svg").is_file()


def test_cost_csv_import_keeps_the_measurement_and_remeasuring_replaces(tmp_path):
    rows = cost_rows()
    cost_table.write_cost_report(tmp_path, "cost-chemprot", cost_table.cost_table("chemprot", rows, MACHINE), rows, MACHINE)
    store = tmp_path / "results.sqlite"
    cost_store.import_cost_csv(tmp_path / "cost-chemprot.csv", "chemprot", store)
    cost_store.import_cost_csv(tmp_path / "cost-chemprot.csv", "chemprot", store)
    (section,) = cost_store.cost_sections(read_rows(store))
    assert len(read_rows(store)) == 2 and [r["model"] for r in section["rows"]] == [r["model"] for r in rows]
    assert section["rows"][1]["epoch_seconds"] == pytest.approx(2141.656) and section["rows"][0]["parameters"] == 22567686
    # The hardware line of the md beside the csv names device, CPU count and load.
    assert {k: section["machine"][k] for k in ("cpu", "device", "cpus", "torch_threads", "load_average")} == \
        {k: MACHINE[k] for k in ("cpu", "device", "cpus", "torch_threads", "load_average")}


def test_stilt_interval_is_the_paired_bootstrap_of_the_targets_test_predictions(shared_data, tmp_path):
    """BIOSSES after GAD with predictions nearer the gold than the baseline's: the page's interval is
    the bootstrap of those predictions; identical predictions (after ChemProt) give [+0.00, +0.00]."""
    from blurbkit.data.load import load_split
    from blurbkit.metrics import METRICS
    from blurbkit.train.provenance import records_sha256

    gold = load_split("biosses", "test", str(shared_data))
    sha = records_sha256(gold)
    store = ResultsStore(tmp_path / "results.sqlite")
    rng = random.Random(0)
    expected = {}
    for seed in range(2):
        base = {r["id"]: r["score"] + rng.gauss(0, 1.2) for r in gold}
        runs = {stilt.BASELINE: base, stilt.transfer_variant("gad", "a" * 32): {r["id"]: r["score"] + rng.gauss(0, 0.3) for r in gold},
                stilt.transfer_variant("chemprot", "b" * 32): base}
        for variant, predictions in runs.items():
            out = tmp_path / "runs" / f"{variant}-{seed}"
            (out / "predictions").mkdir(parents=True)
            (out / "run.json").write_text(json.dumps({"config": {"dataset": "biosses", "seed": seed, "data": str(shared_data)},
                                                      "data_sha256": {"test": sha}}))
            (out / "predictions" / "test.jsonl").write_text("".join(json.dumps({"id": i, "prediction": p}) + "\n"
                                                                    for i, p in predictions.items()))
            score = METRICS.get("pearson")([r["score"] for r in gold], [predictions[r["id"]] for r in gold])["score"]
            expected.setdefault(variant, []).append(100 * score)
            _add(store, "stilt", variant, "biosses", seed, {"lr": 1e-4}, {"score": score}, run_dir=str(out))
    store.close()
    out = build_site([tmp_path / "results.sqlite"], tmp_path / "site", data=shared_data, replicates=300).out
    rows = {r[1]: r for r in _rows(_page(out, "study-stilt.html"), "Differences from the baseline")}
    diff = statistics.fmean(expected[stilt.transfer_variant("gad", "a" * 32)]) - statistics.fmean(expected[stilt.BASELINE])
    low, high = (float(x) for x in re.fullmatch(r"\[(\S+), (\S+)\]", rows["GAD"][5]).groups())
    assert rows["GAD"][4] == f"{diff:+.2f}" and low <= diff <= high and high - low > 0.5 and rows["GAD"][6] == "20"
    assert rows["ChemProt"][4:6] == ["+0.00", "[+0.00, +0.00]"]


def test_imports_of_bad_files_are_one_line_and_store_nothing(tmp_path, capsys):
    from blurbkit.cli.main import main

    rows = cost_rows()
    cost_table.write_cost_report(tmp_path, "cost-chemprot", cost_table.cost_table("chemprot", rows, MACHINE), rows, MACHINE)
    text = (tmp_path / "cost-chemprot.csv").read_text().splitlines()
    header = text[0].split(",")
    drop = header.index("timed_seconds")
    (tmp_path / "cost-chemprot-cut.csv").write_text("\n".join(",".join(c for n, c in enumerate(line.split(",")) if n != drop)
                                                           for line in text) + "\n")
    (tmp_path / "cost-ddi.csv").write_text((tmp_path / "cost-chemprot.csv").read_text())
    seconds = text[2].split(",")
    seconds[header.index("timed_seconds")] = "slow"
    (tmp_path / "cost-chemprot-text.csv").write_text("\n".join([*text[:2], ",".join(seconds), *text[3:]]) + "\n")
    (tmp_path / "cost-chemprot-header.csv").write_text(text[0] + "\n")
    (tmp_path / "cost-chemprot-extra.csv").write_text("\n".join([*text[:2], text[2] + ",7", *text[3:]]) + "\n")
    info, results = probe_info(layers=1, seeds=1)
    bare = {k: v for k, v in info.items() if k not in ("store_model", "budget")}
    (tmp_path / "nopool.json").write_text(results_json(results, bare | {"settings": {"epochs": 1}}))
    (tmp_path / "nodataset.json").write_text(results_json(results, bare | {"dataset": "nosuch"}))
    store = tmp_path / "results.sqlite"
    for argv, says in (
        (["cost", "--import-csv", str(tmp_path / "cost-chemprot-cut.csv"), "--store", str(store)], "timed_seconds"),
        (["cost", "--import-csv", str(tmp_path / "cost-ddi.csv"), "--store", str(store)], "a cost table of 'ddi'"),
        (["cost", "--import-csv", str(tmp_path / "cost-chemprot-text.csv"), "--store", str(store)],
         "cost-chemprot-text.csv:3: not a cost table written by blurbkit cost (timed_seconds 'slow' is not a number)"),
        (["cost", "--import-csv", str(tmp_path / "cost-chemprot-header.csv"), "--store", str(store)],
         "cost-chemprot-header.csv: not a cost table written by blurbkit cost (no rows)"),
        (["cost", "--import-csv", str(tmp_path / "cost-chemprot-extra.csv"), "--store", str(store)],
         "cost-chemprot-extra.csv:3: not a cost table written by blurbkit cost (more cells than the header has columns)"),
        (["probe", "--import-json", str(tmp_path / "nopool.json"), "--store", str(store)], "settings.pool"),
        (["probe", "--import-json", str(tmp_path / "nodataset.json"), "--store", str(store)], "nosuch"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], (argv, err)
    assert not store.exists() or read_rows(store) == []


def test_a_stilt_cell_keeps_one_intermediate_setting_and_pairs_seeds_both_ways():
    import json

    from blurbkit.experiments import stilt
    from blurbkit.experiments.site.stilt_page import matrix

    def row(dataset, seed, score, variant=stilt.BASELINE, lr=5e-5, key=None):
        return {"dataset": dataset, "seed": seed, "test_score": score, "status": "ok", "variant": variant,
                "hyperparameters": json.dumps({"lr": lr}), "run_key": key or f"{variant}{dataset}{seed}{lr}",
                "notes": "[]", "dev_score": score}

    rows = [row("gad", s, 0.70, key=f"a{s}" * 8) for s in range(3)]  # intermediates at lr 5e-5
    rows += [row("ddi", s, 0.50) for s in range(2)]  # the target's baseline: seed 2 failed (--keep-going)
    rows += [row("ddi", s, 0.50 + 0.1 * (s == 2), stilt.transfer_variant("gad", f"a{s}" * 8)) for s in range(3)]
    m = matrix("m", "quick", rows)
    pair = m.pairs[("ddi", "gad")]
    assert [r["seed"] for r in pair.cell.runs] == [0, 1] and pair.difference == pytest.approx(0.0)
    rows += [row("gad", s, 0.10, lr=1e-5, key=f"b{s}" * 8) for s in range(3)]  # intermediates trained otherwise
    rows += [row("ddi", s, 0.90, stilt.transfer_variant("gad", f"b{s}" * 8)) for s in range(2)]
    pair = matrix("m", "quick", rows).pairs[("ddi", "gad")]
    assert pair.cell.scores == [90.0, 90.0] and pair.cell.superseded == 3  # not averaged with the first three
