"""`blurbkit bench` runs end to end on a tiny random BERT and a handful of examples.

These check that the commands run and report their fields, never how fast anything is."""

from __future__ import annotations

import json

import pytest

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert

SIDE_FIELDS = {"train_examples_per_second", "eval_examples_per_second", "dev_score", "peak_memory_mb", "train_mfu"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def _last_json_line(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # one JSON line, nothing else on stdout
    return json.loads(out[0])


@pytest.mark.parametrize(("dataset", "task"), [("bc5chem", "token"), ("chemprot", "sequence")])
def test_bench_speed_reports_both_sides(dataset, task, tiny_model, shared_data, tmp_path, capsys):
    code = main(["bench", "speed", "--dataset", dataset, "--model", str(tiny_model), "--data", str(shared_data),
                 "--train-examples", "12", "--eval-examples", "6", "--results-dir", str(tmp_path),
                 "--peak-seconds", "0.01"])
    assert code == 0
    result = _last_json_line(capsys)
    assert result["task"] == task and result["train_examples"] == 12 and result["eval_examples"] == 6
    assert set(result["trainer"]) >= SIDE_FIELDS and SIDE_FIELDS | {"eval_mfu", "precision"} <= set(result["blurbkit"])
    for key in ("train_speedup", "eval_speedup", "dev_score_difference"):
        assert isinstance(result[key], float)
    assert result["peak_gflops"]["bf16"] > 0 and result["peak_gflops"]["fp32"] > 0
    assert 0 <= result["blurbkit"]["dev_score"] <= 1
    assert json.loads((tmp_path / f"speed_{dataset}.json").read_text()) == result


def test_bench_speed_engine_options_and_blurbkit_only(tiny_model, shared_data, tmp_path, capsys):
    code = main(["bench", "speed", "--model", str(tiny_model), "--data", str(shared_data), "--train-examples", "8",
                 "--eval-examples", "4", "--results-dir", str(tmp_path), "--peak-seconds", "0.01", "--no-trainer",
                 "--engine-option", "precision=fp32", "--engine-option", "group_by_length=false"])
    assert code == 0
    result = _last_json_line(capsys)
    assert "trainer" not in result and result["blurbkit"]["precision"] == "fp32"
    assert result["engine_options"] == {"precision": "fp32", "group_by_length": False}
    assert (tmp_path / "speed_bc5chem__group_by_length-False__precision-fp32__no-trainer.json").is_file()


def test_bench_speed_unknown_engine_option_is_one_line(tiny_model, tmp_path, capsys):
    code = main(["bench", "speed", "--model", str(tiny_model), "--engine-option", "warp_drive=1",
                 "--results-dir", str(tmp_path)])
    assert code == 2
    assert "unknown setting(s) warp_drive" in capsys.readouterr().err


def test_bench_inference_compares_with_the_pipeline(tiny_model, shared_data, tmp_path, capsys):
    code = main(["bench", "inference", "--model", str(tiny_model), "--data", str(shared_data), "--sentences", "10",
                 "--train-examples", "8", "--results-dir", str(tmp_path), "--peak-seconds", "0.01"])
    assert code == 0
    result = _last_json_line(capsys)
    assert result["sentences"] == 10
    assert result["pipeline"]["sentences_per_second"] > 0 and result["blurbkit"]["sentences_per_second"] > 0
    assert 0 <= result["identical_tags"] <= 1 and result["blurbkit"]["mfu"] >= 0
    assert (tmp_path / "speed_inference_bc5chem.json").is_file()
