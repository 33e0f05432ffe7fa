"""`blurbkit compare`: metrics from per-unit counts equal the official metrics; the paired bootstrap
gives [0, 0] for identical predictions and covers a known shift; abstracts are drawn whole."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from blurbkit.experiments.compare import bootstrap_differences, interval, seed_tests
from blurbkit.metrics import METRICS
from blurbkit.metrics.decompose import DECOMPOSITIONS
from blurbkit.scoring import score_predictions, unit_statistics
from blurbkit.tasks.registry import get_dataset


def _tags(rng: random.Random, n: int, kinds: tuple[str, ...]) -> list[str]:
    out, inside = [], None
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            out.append("O")
            inside = None
        elif inside and r < 0.8:
            out.append(f"I-{inside}")
        else:
            inside = rng.choice(kinds)
            out.append(f"B-{inside}")
    return out


def _cases(rng: random.Random):
    labels = ["false", "CPR:3", "CPR:4"]
    gold_l, pred_l = [rng.choice(labels) for _ in range(60)], [rng.choice(labels) for _ in range(60)]
    gold_s = [_tags(rng, rng.randint(1, 12), ("X", "Y")) for _ in range(40)]
    pred_s = [_tags(rng, len(g), ("X", "Y")) for g in gold_s]
    pico_g = [[rng.choice(["O", "I-PAR", "I-INT", "I-OUT"]) for _ in range(rng.randint(1, 9))] for _ in range(30)]
    pico_p = [[rng.choice(["O", "I-PAR", "I-INT", "I-OUT"]) for _ in t] for t in pico_g]
    hoc_g = {f"{d}_s{s}": rng.sample(range(5), rng.randint(0, 2)) for d in range(12) for s in range(3)}
    hoc_p = {k: rng.sample(range(5), rng.randint(0, 2)) for k in hoc_g}
    xs = [rng.uniform(0, 4) for _ in range(25)]
    return {
        "entity_f1": ((gold_s, pred_s), {"scheme": "iob2"}),
        "pico_macro_f1": ((pico_g, pico_p), {}),
        "relation_micro_f1": ((gold_l, pred_l), {"negative_label": "false"}),
        "accuracy": ((gold_l, pred_l), {}),
        "pearson": ((xs, [x + rng.gauss(0, 1) for x in xs]), {}),
        "hoc_micro_f1": ((hoc_g, hoc_p), {}),
    }


@pytest.mark.parametrize("trial", range(3))
def test_every_metric_is_its_summed_unit_counts(trial):
    cases = _cases(random.Random(trial))
    assert set(cases) == set(DECOMPOSITIONS.names()) == set(METRICS.names())
    for name, (args, kwargs) in cases.items():
        official = METRICS.get(name)(*args, **kwargs)["score"]
        decomposition = DECOMPOSITIONS.get(name)
        totals = np.asarray(decomposition.items(*args, **kwargs), dtype=float).sum(axis=0)
        assert decomposition.from_totals(totals) == pytest.approx(official, abs=1e-12), name


def test_undefined_pearson_and_empty_f1_are_zero_as_in_the_metrics():
    pearson = DECOMPOSITIONS.get("pearson")
    constant = np.asarray(pearson.items([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])).sum(axis=0)
    assert pearson.from_totals(constant) == 0.0 == METRICS.get("pearson")([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])["score"]
    assert DECOMPOSITIONS.get("entity_f1").from_totals(np.zeros(3)) == 0.0


def test_task_types_give_their_bootstrap_units_hoc_abstracts_and_ner_documents():
    hoc = get_dataset("hoc")
    gold = [{"id": "111", "text": "a", "labels": [hoc.labels[0]]}, {"id": "222", "text": "b", "labels": []}]
    predictions = {"111_s1": [hoc.labels[0]], "111_s2": [hoc.labels[1]], "222_s1": []}
    units, rows = unit_statistics(hoc, gold, predictions)
    assert units == ["111", "222"] and rows == [[1, 2, 1], [0, 0, 0]]
    assert hoc.task.score_from_totals(np.asarray(rows).sum(axis=0)) == pytest.approx(
        score_predictions(hoc, gold, predictions)["score"])
    ncbi = get_dataset("ncbi_disease")
    gold = [{"id": "s1", "doc_id": "d1", "tokens": ["a", "b"], "tags": ["B-Disease", "O"]},
            {"id": "s2", "doc_id": "d1", "tokens": ["c"], "tags": ["O"]},
            {"id": "s3", "doc_id": None, "tokens": ["d"], "tags": ["B-Disease"]}]
    units, rows = unit_statistics(ncbi, gold, [["B-Disease", "O"], ["B-Disease"], ["O"]])
    assert units == ["d1", "d1", "s3"] and rows == [[1, 1, 1], [0, 1, 0], [0, 0, 1]]


def _accuracy_counts(correct: np.ndarray) -> np.ndarray:
    return np.stack([correct.astype(float), np.ones(len(correct))], axis=1)


def test_identical_predictions_give_the_interval_zero_zero():
    rng = np.random.default_rng(1)
    counts = _accuracy_counts(rng.random(300) < 0.7)
    score = get_dataset("pubmedqa").task.score_from_totals
    observed, reps = bootstrap_differences(score, [counts, counts], [counts, counts], replicates=500)
    assert observed == 0.0 and interval(reps) == (0.0, 0.0)


def test_a_known_shift_lies_inside_the_interval_and_zero_outside():
    rng = np.random.default_rng(2)
    n = 4000
    a, b = rng.random(n) < 0.80, rng.random(n) < 0.70  # true accuracies 80% and 70%: a shift of 10 points
    score = get_dataset("pubmedqa").task.score_from_totals
    observed, reps = bootstrap_differences(score, [_accuracy_counts(a)], [_accuracy_counts(b)], replicates=1000)
    low, high = interval(reps)
    assert low < 10.0 < high and low > 0
    assert observed == pytest.approx(100 * (a.mean() - b.mean()))
    # The same shift on the same examples (B = A with 10% of its hits turned into misses) is paired:
    # a narrower interval than for independent predictions.
    paired_b = a & (rng.random(n) > 0.125)
    _, paired = bootstrap_differences(score, [_accuracy_counts(a)], [_accuracy_counts(paired_b)], replicates=1000)
    assert interval(paired)[1] - interval(paired)[0] < high - low


def test_seed_tests_need_two_seeds_each():
    assert seed_tests([1.0], [2.0, 3.0]) == {"welch_p": None, "mannwhitney_p": None}
    result = seed_tests([70.0, 71.0, 72.0], [60.0, 61.0, 62.0])
    assert result["welch_p"] < 0.01 and result["mannwhitney_p"] == pytest.approx(0.1)


def _biosses_run(root, store, model, seed, predictions, gold_sha):
    from blurbkit.store.results import RunKey

    key = RunKey("benchmark", "standard", model, "biosses", seed, "full", json.dumps({"lr": 1e-4}))
    out = root / f"{abs(hash(model)) % 10**6}-{seed}"
    (out / "predictions").mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"config": {"dataset": "biosses", "seed": seed, "data": str(root / "data")},
                                              "data_sha256": {"test": gold_sha}}))
    (out / "predictions" / "test.jsonl").write_text("".join(json.dumps({"id": i, "prediction": p}) + "\n"
                                                            for i, p in predictions.items()))
    score = METRICS.get("pearson")([0.0, 1.0], [0.0, 1.0])["score"]
    store.add(key, {"metric": "pearson", "test": {"score": score}, "dev": {"score": score}}, "c", str(out))


def test_compare_command_reads_the_runs_predictions_and_gold(shared_data, tmp_path, capsys):
    from blurbkit.cli.main import main
    from blurbkit.data.load import load_split
    from blurbkit.store.results import ResultsStore
    from blurbkit.train.provenance import records_sha256

    (tmp_path / "data").symlink_to(shared_data)
    gold = load_split("biosses", "test", str(tmp_path / "data"))
    sha = records_sha256(gold)
    store = ResultsStore(tmp_path / "results.sqlite")
    rng = random.Random(0)
    for seed in range(2):
        good = {r["id"]: r["score"] + rng.gauss(0, 0.3) for r in gold}
        _biosses_run(tmp_path, store, "/models/good", seed, good, sha)
        _biosses_run(tmp_path, store, "/models/same", seed, good, sha)
        _biosses_run(tmp_path, store, "/models/other-data", seed, good, "0" * 64)
    assert main(["compare", "good", "same", "--store", str(tmp_path / "results.sqlite"), "--replicates", "200"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| BIOSSES"))
    assert "+0.00 | [+0.00, +0.00] | 20 |" in row
    assert "needs a paired interval on all 13 datasets" in out
    # Test records that differ from those the run scored: no interval, and the row says why.
    assert main(["compare", "good", "other-data", "--store", str(tmp_path / "results.sqlite")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| BIOSSES"))
    assert "differ from those the run scored" in row and "| — |" in row
    assert main(["compare", "good", "nothing", "--store", str(tmp_path / "results.sqlite")]) == 2
    assert "'nothing' is not a model of the store" in capsys.readouterr().err
