"""`blurbkit doctor`: exit 0 only when the main job has what it needs; every problem named with its
fix; never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from blurbkit.cli.main import main
from blurbkit.doctor import disk as doctor_disk
from blurbkit.doctor import machine as doctor_machine
from blurbkit.runtime.capability import ENV_CPU_DTYPES, capability
from blurbkit.tasks.registry import blurb_datasets


def _doctor(capsys, *argv: str) -> tuple[int, str]:
    code = main(["doctor", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out


def test_real_shared_data_is_ready(shared_data, tmp_path, capsys):
    code, out = _doctor(capsys, "--data", str(shared_data), "--runs-dir", str(tmp_path / "runs"))
    assert code == 0, out
    assert f"ready: `blurbkit benchmark --quick --data {shared_data}`" in out
    for spec in blurb_datasets():
        assert f"ok {spec.name:<14}" in out
    assert "ok default model" in out and "(bert, 6 layers, hidden 384" in out
    assert "train.txt not distributed" in out  # EBM PICO: the quick budget carves train from dev


def test_a_missing_dataset_is_named_with_its_fix(shared_data, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for spec in blurb_datasets():
        if spec.name != "gad":
            (data / spec.name).symlink_to(shared_data / spec.name)
    code, out = _doctor(capsys, "--data", str(data), "--runs-dir", str(tmp_path / "runs"))
    assert code == 1
    assert "!! gad            folder" in out and "1 problem(s)" in out
    assert f"copy the gad/ folder of the BLURB data into {data}" in out
    assert "--datasets bc5chem," in out and ",gad" not in out  # what still runs without it


def test_a_missing_file_and_a_missing_folder(shared_data, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "bc5chem").mkdir(parents=True)
    shutil.copy(shared_data / "bc5chem" / "train.tsv", data / "bc5chem")
    code, out = _doctor(capsys, "--data", str(data), "--runs-dir", str(tmp_path / "runs"))
    assert code == 1
    assert "!! bc5chem        devel.tsv missing; test.tsv missing" in out
    code, out = _doctor(capsys, "--data", str(tmp_path / "nowhere"))
    assert code == 1 and "nowhere not found" in out and "set BLURBKIT_DATA=DIR" in out


def test_prepared_folder_compares_sha256_with_its_manifest(shared_data, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(shared_data / "bc5chem", raw / "bc5chem")
    assert main(["prepare", "--source", str(raw), "--out", str(tmp_path / "prep"), "--datasets", "bc5chem"]) == 0
    capsys.readouterr()
    code, out = _doctor(capsys, "--data", str(tmp_path / "prep"), "--runs-dir", str(tmp_path / "runs"))
    assert code == 1  # 12 datasets were not prepared
    assert "ok bc5chem        splits present; sha256 of 3 raw files = manifest" in out
    assert "!! gad            not in this prepared folder" in out and "blurbkit prepare --source" in out
    with open(raw / "bc5chem" / "test.tsv", "a") as handle:
        handle.write("Aspirin\tB-Chemical\n")
    code, out = _doctor(capsys, "--data", str(tmp_path / "prep"))
    assert "~~ bc5chem        1 of 3 raw files changed since prepared (test.tsv)" in out


def test_machine_section_on_an_fp32_only_cpu(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(ENV_CPU_DTYPES, "fp32")
    _, out = _doctor(capsys, "--data", str(tmp_path))
    assert "native dtypes  fp32  (precision auto = fp32" in out
    assert f"no bf16        {capability().not_native['bf16']}" in out  # the override, or the CPU itself
    assert "torch          2." in out and "allocator      " in out


def test_bad_model_and_a_broken_check_are_problems_not_tracebacks(monkeypatch, tmp_path, capsys):
    def broken():
        raise RuntimeError("probe exploded\nsecond line")
        yield  # a generator, like the real checks

    import blurbkit.doctor

    monkeypatch.setattr(blurbkit.doctor, "machine_checks", broken)
    code, out = _doctor(capsys, "--model", str(tmp_path), "--data", str(tmp_path))
    assert code == 1
    assert "!! check failed   RuntimeError: probe exploded" in out and "second line" not in out
    assert "no config.json" in out and "pass --model DIR" in out


@pytest.mark.parametrize("free", [10 << 30, 100 << 20])
def test_free_disk_space(monkeypatch, tmp_path, free):
    monkeypatch.setattr(doctor_disk.shutil, "disk_usage", lambda path: SimpleNamespace(total=2 * free, used=free, free=free))
    checks = list(doctor_disk.disk_checks(tmp_path / "runs" / "deeper"))
    assert [c.name for c in checks] == ["runs", "cache"]
    assert {c.status for c in checks} == ({"ok"} if free > doctor_disk.MIN_FREE_BYTES else {"problem"})


def test_memory_line_names_the_usable_memory_and_when_the_heap_goes_back():
    from blurbkit.doctor.machine import memory_checks

    [check] = memory_checks(state=(4 << 30, 1 << 30, 512 << 20))  # e.g. a container limited to 4 GiB
    assert check.name == "memory" and check.status == "note"
    assert check.detail.startswith("4.0 GiB usable, 1.0 GiB available now") and "below 25% available" in check.detail
    assert list(memory_checks(state=None)) or not Path("/proc/meminfo").exists()  # this machine: one line


def test_the_threads_line_warns_against_the_cores_a_container_allows(monkeypatch):
    import torch

    from blurbkit.runtime import capability

    before = torch.get_num_threads()
    monkeypatch.setattr(capability, "cgroup_cpu_limit", lambda: 1.0)  # 1 CPU of however many the host has
    try:
        torch.set_num_threads(2)
        line = next(c for c in doctor_machine.machine_checks() if c.name == "threads")
    finally:
        torch.set_num_threads(before)
    assert "more than the 1 cores this process may use" in line.detail, line


def test_peaks_names_each_native_dtype_and_the_ratio_of_the_measured_numbers(monkeypatch, tmp_path, capsys):
    from blurbkit.speed import machine as speed_machine

    # The timing itself is speed/machine.py's (tested there); here: what doctor makes of its numbers.
    monkeypatch.setattr(speed_machine, "measure_peaks", lambda seconds, size: ({"fp32": 196.4, "bf16": 427.0},
                                                                              {"fp16": "for GPUs"}))
    _, out = _doctor(capsys, "--data", str(tmp_path), "--peaks", "0.5")
    assert "matmul peak    fp32 196, bf16 427 GFLOP/s (2048x2048, best of 0.5 s)" in out
    assert "bf16 vs fp32   2.2x" in out and "fp16 peak      not timed: for GPUs" in out
    monkeypatch.setattr(speed_machine, "measure_peaks", lambda seconds, size: ({"fp32": 200.0}, {"bf16": "no AVX512-BF16"}))
    _, out = _doctor(capsys, "--data", str(tmp_path), "--peaks")
    assert "matmul peak    fp32 200 GFLOP/s (2048x2048, best of 2 s)" in out and "bf16 vs fp32" not in out
    assert "bf16 peak      not timed: no AVX512-BF16" in out
    _, out = _doctor(capsys, "--data", str(tmp_path))
    assert "matmul peak" not in out  # a few seconds of full load: only when asked


def test_peaks_times_a_real_matmul():
    [peak, *rest] = doctor_machine.peak_checks(seconds=0.05, size=128)
    numbers = peak.detail.split(" GFLOP/s")[0].replace(",", "")  # "fp32 N[ bf16 M]"
    assert peak.name == "matmul peak" and float(numbers.split()[1]) > 0  # slow on busy cores, but never shown as 0
    assert all(c.status == "note" for c in rest)


@pytest.mark.parametrize("damage, message", [
    ("cut", "weights do not open (Error while deserializing header: incomplete metadata"),
    ("no_unk", "the tokenizer cannot encode text (WordPiece error: Missing [UNK]"),
])
def test_a_model_that_would_not_load_is_not_called_ready(damage, message, tmp_path, capsys):
    import json

    from blurbkit.models.tiny import build_tiny_bert

    model = build_tiny_bert(tmp_path / "enc", hidden=16, layers=1, heads=2)
    code, out = _doctor(capsys, "--model", str(model), "--data", str(tmp_path))
    assert "ok model" in out  # intact: the checks below find the damage, not something else
    if damage == "cut":
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])  # the header intact, the last tensor short
    else:
        tokenizer = json.loads((model / "tokenizer.json").read_text("utf-8"))
        tokenizer["model"]["vocab"].pop("[UNK]")
        (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    code, out = _doctor(capsys, "--model", str(model), "--data", str(tmp_path))
    assert code == 1 and message in out and "ok model" not in out
