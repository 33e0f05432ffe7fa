"""`blurbkit bench` runs end to end on a tiny random BERT and a handful of examples.

These check that the commands run and report their fields, never how fast anything is. Matmul
peaks are timed on a small matrix (--peak-size) and only in the dtypes the CPU runs natively
(runtime/capability.py), so the tests are fast on a CPU without bf16 too."""

from __future__ import annotations

import json
import tempfile

import pytest

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.runtime.capability import ENV_CPU_DTYPES, capability
from blurbkit.speed import machine

PEAK = ["--peak-seconds", "0.01", "--peak-size", "256"]
SIDE_FIELDS = {"train_examples_per_second", "eval_examples_per_second", "dev_score", "peak_memory_mb", "train_mfu", "allocator"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def _last_json_line(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # one JSON line, nothing else on stdout
    return json.loads(out[0])


@pytest.mark.parametrize(("dataset", "task"), [("bc5chem", "token"), ("chemprot", "sequence")])
def test_bench_speed_reports_both_sides(dataset, task, tiny_model, shared_data, tmp_path, capsys, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the Trainer's output folder is made
    code = main(["bench", "speed", "--dataset", dataset, "--model", str(tiny_model), "--data", str(shared_data),
                 "--train-examples", "12", "--eval-examples", "6", "--results-dir", str(tmp_path), *PEAK])
    assert code == 0
    result = _last_json_line(capsys)
    assert result["task"] == task and result["train_examples"] == 12 and result["eval_examples"] == 6
    assert set(result["trainer"]) >= SIDE_FIELDS and SIDE_FIELDS | {"eval_mfu", "precision"} <= set(result["blurbkit"])
    for key in ("train_speedup", "eval_speedup", "dev_score_difference"):
        assert isinstance(result[key], float)
    assert set(result["peak_gflops"]) == set(capability().native_dtypes) and result["peak_gflops"]["fp32"] > 0
    assert result["trainer"]["mfu_peak"] == "fp32"
    assert result["blurbkit"]["mfu_peak"] == ("bf16" if result["blurbkit"]["precision"] == "bfloat16" else "fp32")
    assert 0 <= result["blurbkit"]["dev_score"] <= 1
    assert json.loads((tmp_path / f"speed_{dataset}.json").read_text()) == result
    assert not list(scratch.glob("blurbkit_hf_*"))  # the Trainer's output folder is removed, not left in /tmp


def test_bench_speed_engine_options_and_blurbkit_only(tiny_model, shared_data, tmp_path, capsys):
    code = main(["bench", "speed", "--model", str(tiny_model), "--data", str(shared_data), "--train-examples", "8",
                 "--eval-examples", "4", "--results-dir", str(tmp_path), *PEAK, "--no-trainer",
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
                 "--train-examples", "8", "--results-dir", str(tmp_path), *PEAK])
    assert code == 0
    result = _last_json_line(capsys)
    assert result["sentences"] == 10
    assert result["pipeline"]["sentences_per_second"] > 0 and result["blurbkit"]["sentences_per_second"] > 0
    assert 0 <= result["identical_tags"] <= 1 and result["blurbkit"]["mfu"] >= 0
    assert result["blurbkit"]["allocator"] == "tuned by blurbkit (mallopt)"
    assert (tmp_path / "speed_inference_bc5chem.json").is_file()


def test_bench_inference_engine_options_reach_blurbkits_side(tiny_model, shared_data, tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        code = main(["bench", "inference", "--model", str(tiny_model), "--data", str(shared_data), "--sentences", "6",
                     "--train-examples", "8", "--results-dir", str(tmp_path), *PEAK, "--engine-option", "precision=fp32",
                     "--engine-option", "threads=1"])
    finally:
        torch.set_num_threads(before)  # the option sets the process's count; later tests in this worker keep theirs
    assert code == 0
    result = _last_json_line(capsys)
    assert result["blurbkit"]["precision"] == "fp32" and result["engine_options"] == {"precision": "fp32", "threads": 1}
    # Both sides in fp32 on the same weights: the same tags, word for word (an independent check of
    # blurbkit's decoding against transformers.pipeline's aggregation).
    assert result["identical_tags"] >= 0.99 and result["entity_words"] > 0
    assert (tmp_path / "speed_inference_bc5chem__precision-fp32__threads-1.json").is_file()
    code = main(["bench", "inference", "--model", str(tiny_model), "--engine-option", "warp_drive=1",
                 "--results-dir", str(tmp_path)])
    assert code == 2 and "--engine-option: unknown runtime setting(s) warp_drive" in capsys.readouterr().err


def test_bench_speed_on_a_cpu_without_bf16(tiny_model, shared_data, tmp_path, capsys, monkeypatch):
    """Simulated with the override on a bf16 machine: no bf16 matmul is ever timed, blurbkit runs
    fp32 and both sides' MFU is against the fp32 peak; the report says what was skipped and why."""
    monkeypatch.setenv(ENV_CPU_DTYPES, "fp32")
    real_peak = machine.matmul_peak

    def only_native(dtype, **kwargs):
        assert dtype == machine.torch.float32, f"timed {dtype} on an fp32-only CPU"
        return real_peak(dtype, **kwargs)

    monkeypatch.setattr(machine, "matmul_peak", only_native)
    code = main(["bench", "speed", "--model", str(tiny_model), "--data", str(shared_data), "--train-examples", "8",
                 "--eval-examples", "4", "--results-dir", str(tmp_path), *PEAK])
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert list(result["peak_gflops"]) == ["fp32"]
    assert result["peak_skipped"]["bf16"] == capability().not_native["bf16"]  # the override, or the CPU itself
    assert "bf16 matmul peak not measured" in captured.err
    assert result["blurbkit"]["precision"] == "fp32" and result["blurbkit"]["mfu_peak"] == "fp32"
    assert result["blurbkit"]["train_mfu"] > 0 and result["trainer"]["train_mfu"] > 0
    assert result["machine"]["native_dtypes"] == ["fp32"]


FAIR_ORDER = """
import sys
from pathlib import Path
from blurbkit.speed.inference import finetune_quickly
from blurbkit.inference.predictor import Predictor
from blurbkit.runtime.allocator import allocator_state
model = finetune_quickly("bc5chem", sys.argv[1], sys.argv[2], 8, 0, Path(sys.argv[3]))
after_finetune = allocator_state()
Predictor.load(model).predict(["Aspirin and caffeine."])
print(after_finetune, "|", allocator_state())
"""


def test_bench_inference_times_the_pipeline_on_the_default_malloc(tiny_model, shared_data, tmp_path):
    """The quick fine-tune before the pipeline leaves malloc alone; blurbkit's Predictor tunes it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", FAIR_ORDER, str(tiny_model), str(shared_data), str(tmp_path / "m")],
                         capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1]
    assert out == "default | tuned by blurbkit (mallopt)"


def test_both_sides_of_a_comparison_run_with_the_containers_thread_count(monkeypatch):
    import torch

    from blurbkit.runtime import capability
    from blurbkit.speed.machine import same_threads

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(capability, "cgroup_cpu_limit", lambda: 1.0)  # docker --cpus 1
    try:
        torch.set_num_threads(2)
        assert same_threads() == 1 == torch.get_num_threads()  # before the Trainer side, not only blurbkit's
        assert same_threads(2) == 2  # --engine-option threads=2: both sides too
    finally:
        torch.set_num_threads(before)
