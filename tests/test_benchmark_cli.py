"""`blurbkit benchmark`: runs into the store, skips what is stored, and tabulates only the runs of
the settings asked for now (a store can hold runs of other settings for the same dataset)."""

from __future__ import annotations

import sys
import types

import pytest
from conftest import fake_model_dir

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def _argv(tiny_model, shared_data, runs, lr):
    return ["benchmark", "--datasets", "gad", "--seeds", "1", "--data", str(shared_data), "--model", str(tiny_model),
            "--runs-dir", str(runs), "--epochs", "1", "--batch-size", "8", "--max-train-examples", "16",
            "--max-eval-examples", "8", "--max-test-examples", "24", "--lr", lr, "--no-progress"]


def _gad_cell(out: str) -> str:
    row = next(line for line in out.splitlines() if line.startswith("| GAD |"))
    return row.strip("|").split("|")[1].strip()


def test_benchmark_stores_skips_and_tabulates_only_the_current_settings(tiny_model, shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(_argv(tiny_model, shared_data, runs, "5e-5")) == 0
    first = capsys.readouterr()
    assert _gad_cell(first.out).endswith("(n=1)")
    assert "— (needs all 13)" in first.out and "BUDGET RUN (quick)" not in first.out
    assert "trained on a seeded subsample of 16 of 4261 train records" in first.out
    assert main(_argv(tiny_model, shared_data, runs, "5e-5")) == 0
    assert "already stored" in capsys.readouterr().err
    # Other settings: a new run; the table shows it alone, not averaged with the first.
    assert main(_argv(tiny_model, shared_data, runs, "1e-4")) == 0
    third = capsys.readouterr()
    assert "already stored" not in third.err
    assert _gad_cell(third.out).endswith("(n=1)")
    rows = ResultsStore(runs / "results.sqlite").rows(study="benchmark")
    assert len(rows) == 2
    newest = max(rows, key=lambda r: r["id"])
    assert _gad_cell(third.out).startswith(f"{100 * newest['test_score']:.2f}")


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    """A model directory that passes the checks and a fine-tuning that trains nothing: the CLI alone."""
    model = fake_model_dir(tmp_path)
    trained = []

    def run_finetune(config):
        trained.append(config)
        return {"metric": "micro_f1", "test": {"score": 0.5}, "dev": {"score": 0.5}, "wall_seconds": 0.0, "notes": []}

    monkeypatch.setitem(sys.modules, "blurbkit.train.run", types.SimpleNamespace(run_finetune=run_finetune))
    return model, trained


@pytest.mark.parametrize(("flags", "budget"), [
    (["--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "24"], "custom-train16-dev8-test24"),
    (["--max-train-examples", "16"], "custom-train16"),
    (["--quick", "--max-test-examples", "24"], "quick+test24"),
    (["--quick"], "quick"),
    ([], "full"),
])
def test_budget_flags_make_a_labelled_budget_run(fake_runs, tmp_path, capsys, flags, budget):
    model, trained = fake_runs
    runs = tmp_path / "runs"
    argv = ["benchmark", "--datasets", "gad", "--seeds", "1", "--model", str(model), "--runs-dir", str(runs), *flags]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert len(trained) == 1
    assert "1 runs (" + budget + ")" in captured.err.splitlines()[0]
    (row,) = ResultsStore(runs / "results.sqlite").rows(study="benchmark")
    assert row["budget"] == budget
    footer = [line for line in captured.out.splitlines() if line.startswith("BUDGET RUN")]
    if budget == "full":
        assert footer == []
    else:
        assert footer[0].startswith(f"BUDGET RUN ({budget}): ")
    assert (runs / f"benchmark-{budget}.md").read_text().startswith("| dataset |")


def test_a_dataset_trained_on_locally_deviating_data_is_labelled_in_the_table():
    from blurbkit.experiments.benchmark import blurb_table
    from blurbkit.tasks.registry import blurb_datasets

    cells = {spec.name: {"mean": 70.0, "std": 0.0, "n": 1, "notes": []} for spec in blurb_datasets()}
    plain = blurb_table(cells, "this run", "full")
    assert "LOCAL DEVIATION" not in plain and "| **BLURB score** | **70.00** |" in plain
    cells["ebm_pico"]["notes"] = ["train: LOCAL DEVIATION from BLURB: train.txt is not distributed, so train = ..."]
    table = blurb_table(cells, "this run", "full").splitlines()
    assert any(line.startswith("| EBM PICO (LOCAL DEVIATION) | 70.00") for line in table)
    assert "| **BLURB score** | **70.00** (with the LOCAL DEVIATION of EBM PICO) |" in "\n".join(table)
    assert table[-1].startswith("LOCAL DEVIATION: EBM PICO not trained or scored on the published data")


def test_failed_runs_left_out_of_a_complete_table_are_named_beside_the_blurb_score():
    from blurbkit.experiments.benchmark import blurb_table
    from blurbkit.tasks.registry import blurb_datasets

    cells = {spec.name: {"mean": 70.0, "std": 1.0, "n": 5, "notes": []} for spec in blurb_datasets()}
    cells["biosses"]["n"] = 8
    table = blurb_table(cells, "this run", "full", {"biosses": 2})
    assert "| BIOSSES | 70.00 ± 1.00 (n=8, 2 failed) |" in table
    assert "| **BLURB score** | **70.00** (failed runs left out of the means: BIOSSES 2) |" in table
    assert "sample std (n-1)" in table and "failed runs left out" not in blurb_table(cells, "this run", "full")
