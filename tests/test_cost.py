"""`blurbkit cost`: a row per model (a random architecture preset included), one-line refusals."""

from __future__ import annotations

import csv
import json

import pytest

from blurbkit.cli.main import main
from blurbkit.models import tiny
from blurbkit.models.tiny import build_tiny_bert


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_bert(root / "a", hidden=32, layers=2)


def test_cost_prints_a_row_per_model(tiny_model, shared_data, tmp_path, capsys, monkeypatch):
    # A small random preset stands in for bert-base-random (same code path, seconds instead of minutes).
    monkeypatch.setitem(tiny.RANDOM_PRESETS, "tiny-random", (32, 1, 2, 64))
    out = tmp_path / "out"
    assert main(["cost", "--models", f"{tiny_model},tiny-random", "--dataset", "chemprot", "--data", str(shared_data),
                 "--max-train-examples", "16", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split("|")[1].strip() for row in rows] == ["a", "tiny-random (1x32)"]
    assert all("16 of 18035 × 1 ep (extrapolated)" in row for row in rows)
    assert "random (timing only)" in rows[1] and "Random rows" in printed
    assert "batch 32, max length 128" in printed and "Hardware: " in printed and "torch thread" in printed
    assert "no BioM-Transformers Table 3 values" in printed
    table = list(csv.DictReader((out / "cost-chemprot.csv").open()))
    assert [r["model"] for r in table] == ["a", "tiny-random (1x32)"]
    assert int(table[0]["parameters"]) > int(table[1]["parameters"]) > 0  # 2 layers vs 1
    assert all(float(r["tokens_per_second"]) > 0 and float(r["epoch_seconds"]) > 0 for r in table)
    assert (out / "cost-chemprot.png").is_file()
    from blurbkit.store.results import read_rows

    stored = read_rows(out / "results.sqlite")  # the default store: OUT/results.sqlite
    assert [(r["study"], r["model"]) for r in stored] == [("cost", str(tiny_model.resolve())), ("cost", "tiny-random (1x32)")]
    assert json.loads(stored[0]["test_metrics"])["machine"]["cpu"] and stored[0]["test_score"] is None


def test_cost_bad_inputs_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)  # the default --out is ./runs: a refused command must not create it
    for argv, message in (
        (["cost", "--models", str(tmp_path / "missing")], "does not exist"),
        (["cost", "--models", f"minilm,{tmp_path / 'empty'}"], "no config.json"),
        (["cost", "--models", " , "], "--models names no model"),
        (["cost", "--models", "minilm", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["cost", "--models", "minilm", "--epochs", "0"], "--epochs must be at least 1"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
        assert not (tmp_path / "runs").exists(), argv


def test_a_model_that_does_not_load_leaves_no_store(tmp_path, shared_data, capsys, monkeypatch):
    model = build_tiny_bert(tmp_path / "enc", hidden=16, layers=1, heads=2)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "--models", str(model), "--dataset", "biosses", "--data", str(shared_data)]) == 2
    assert "cannot load the model weights" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "results.sqlite").exists()
