"""benchmarks/protocol_seeds.py: seeds from several sessions' result files, gathered into one table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "protocol_seeds.py"


def _seed(test: float, dev: float, epoch: int) -> dict:
    # the per-epoch list first: the dev score must be found by its name, not by coming first
    return {"dev_accuracy_by_epoch": [dev - 1], "test_accuracy": test, "dev_accuracy": dev, "best_epoch": epoch, "train_seconds": 600.0,
            "threads": 1, "failed": False, "trivial_test_accuracy": 67.14}


def _write(path: Path, seeds: dict, machine: str) -> Path:
    path.write_text(json.dumps({"dataset": "bioasq", "machine": machine, "seeds": seeds}), encoding="utf-8")
    return path


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_seeds_of_several_files_make_one_table(tmp_path: Path) -> None:
    first = _write(tmp_path / "bioasq_a.json", {"1": _seed(70.0, 85.0, 3), "2": _seed(72.0, 86.0, 4)}, "machine A")
    # seed 2 again, with the same score (a later file repeats earlier seeds), and seed 3 new
    second = _write(tmp_path / "bioasq_b.json", {"2": _seed(72.0, 86.0, 4), "3": _seed(68.0, 84.0, 9)}, "machine B")
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"bioasq": 74.0}), encoding="utf-8")
    out = tmp_path / "seeds.md"
    done = _run(first, second, "--table", table, "--out", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    # seeds 0 (the table's run), 1, 2, 3: mean 71.00, sample sd 2.58, each seed once; seed 0 judged against
    # the trivial predictor's 67.14 that the other seeds record
    assert "| BioASQ | 4 (0, 1, 2, 3) | 71.00 ± 2.58 | 68.00 - 74.00 | 0 of 4 | 87.56 |" in text
    assert "| 0 | 74.00 | — | — | — | — | False | the full-data table's run |" in text
    assert "| 3 | 68.00 | 84.00 | 9 | 10 | 1 | False | bioasq_b.json |" in text
    assert text.count("| 2 | 72.00 |") == 1
    assert "- bioasq_a.json: machine A" in text and "- bioasq_b.json: machine B" in text


def test_a_seed_that_disagrees_between_files_is_refused(tmp_path: Path) -> None:
    first = _write(tmp_path / "bioasq_a.json", {"1": _seed(70.0, 85.0, 3)}, "A")
    second = _write(tmp_path / "bioasq_b.json", {"1": _seed(71.43, 85.0, 3)}, "B")
    out = tmp_path / "seeds.md"
    done = _run(first, second, "--out", out)
    assert done.returncode == 2
    assert done.stderr.strip() == f"protocol_seeds: {second}: bioasq seed 1 scores 71.43 here but 70.0 in bioasq_a.json"
    assert not out.exists()


def test_the_list_form_and_a_quoted_seed(tmp_path: Path) -> None:
    # the older list form names its dataset in the file name; a seed a file only quotes gives way to its run
    listed = tmp_path / "gad_full_minilm_2seeds.json"
    listed.write_text(json.dumps({"machine": "M", "runs": [
        {"seed": 0, "test_f1": 79.0, "dev_f1": 80.0, "best_dev_epoch": 5, "train_seconds": 900.0},
        {"seed": 1, "test_f1": 78.0, "dev_f1": 81.0, "best_dev_epoch": 6, "train_seconds": 960.0}]}), encoding="utf-8")
    # a dataset of two words in the file name (the longest prefix that names a dataset)
    (tmp_path / "ncbi_disease_full.json").write_text(json.dumps({"runs": [{"seed": 0, "test_f1": 80.0}]}), encoding="utf-8")
    quoting = tmp_path / "bioasq_q.json"
    quoting.write_text(json.dumps({"dataset": "bioasq", "seeds": {"1": {"test_accuracy": 70.0, "source": "elsewhere.json"}}}), encoding="utf-8")
    run = _write(tmp_path / "bioasq_r.json", {"1": _seed(70.0, 85.0, 3)}, "R")
    out = tmp_path / "seeds.md"
    done = _run(listed, tmp_path / "ncbi_disease_full.json", quoting, run, "--out", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert "| GAD | 2 (0, 1) | 78.50 ± 0.71 | 78.00 - 79.00 | not recorded | 82.34 |" in text
    assert "| 1 | 78.00 | 81.00 | 6 | 16 | — | — | gad_full_minilm_2seeds.json |" in text
    assert "| NCBI-disease | 1 (0) | 80.00 | 80.00 - 80.00 | not recorded | 87.82 |" in text
    assert "| 1 | 70.00 | 85.00 | 3 | 10 | 1 | False | bioasq_r.json |" in text


def test_a_file_without_seeds_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "bioasq_e.json"
    empty.write_text(json.dumps({"dataset": "bioasq", "seeds": {}}), encoding="utf-8")
    out = tmp_path / "seeds.md"
    done = _run(empty, "--out", out)
    assert done.returncode == 2
    assert done.stderr.strip() == f"protocol_seeds: {empty}: not a seed result file (ValueError: no seeds)"
    assert not out.exists()
