"""Bad input found by trying every command with wrong paths, values and damaged files: each is one
line, exit 2, no traceback, refused before the work, and nothing the user had is replaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
NER = FIXTURES / "ner_bio"
CORPUS = "Aspirin inhibits cyclooxygenase in platelets.\nCaffeine is a stimulant of the nervous system.\n"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blurbkit: error: ") and "Traceback" not in err[0], err
    return err[0]


def _model_copy(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    model = tmp_path / "precious"
    shutil.copytree(NER, model)
    return model, {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}


def test_vocab_build_never_replaces_a_model_folder(tmp_path, capsys):
    (tmp_path / "c.txt").write_text(CORPUS)
    model, before = _model_copy(tmp_path)
    assert main(["vocab", "build", "--corpus", str(tmp_path / "c.txt"), "--out", str(model), "--size", "100"]) == 2
    assert "exists and is not a vocabulary built by blurbkit; choose a new or empty --out" in one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("kind", ["model folder", "file"])
def test_pretrain_never_writes_into_what_is_not_a_pretraining_output(kind, tmp_path, capsys):
    (tmp_path / "c.txt").write_text(CORPUS)
    if kind == "file":
        out = tmp_path / "notes.txt"
        out.write_text("important")
        message = "is a file; --out is the folder the model, checkpoints and logs go to"
    else:
        out, before = _model_copy(tmp_path)
        message = "exists and is not a blurbkit pretraining output"
    assert main(["pretrain", "--corpus", str(tmp_path / "c.txt"), "--init", str(NER), "--out", str(out),
                 "--max-steps", "1", "--max-length", "32"]) == 2
    assert message in one_error_line(capsys)
    if kind == "file":
        assert out.read_text() == "important"
    else:
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before and not (out / "data").exists()


@pytest.mark.parametrize("command", ["select", "build"])
def test_a_corpus_is_never_written_over_its_own_input(command, tmp_path, capsys):
    corpus = tmp_path / "small.jsonl"
    corpus.write_text(json.dumps({"id": "1", "text": "Aspirin and ibuprofen are drugs. " * 5}) + "\n")
    before = corpus.read_bytes()
    argv = (["corpus", "select", "--corpus", str(corpus), "--topic", "drug", "--out", str(corpus)] if command == "select"
            else ["corpus", "build", str(tmp_path), "--out", str(tmp_path / "again.jsonl"), "--no-test-filter", "--no-progress"])
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert ("the output is an input" if command == "select" else f"the output is inside the input folder {tmp_path}") in line
    assert corpus.read_bytes() == before and not (tmp_path / "again.jsonl").exists()


def test_a_damaged_pubtator_line_in_a_corpus_is_named(tmp_path, capsys):
    broken = tmp_path / "broken.pubtator"
    broken.write_text("123|t|Aspirin helps.\nthis line lost its abstract marker\n123\t0\t7\tAspirin\tChemical\tD001241\n")
    assert main(["corpus", "build", str(broken), "--out", str(tmp_path / "o.jsonl"), "--no-test-filter",
                 "--no-progress"]) == 2
    assert f"{broken}:2: expected a 'PMID|t|...' or 'PMID|a|...' line" in one_error_line(capsys)
    assert not (tmp_path / "o.jsonl").exists()


def test_a_run_json_that_is_not_an_object_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text("[1, 2]")
    assert main(["analyze", "attention", str(run)]) == 2
    assert "run.json has no config.dataset" in one_error_line(capsys)


def test_an_output_folder_that_is_a_file_is_refused_before_the_work(tmp_path):
    from blurbkit.fileio import check_writable

    (tmp_path / "afile").write_text("x")
    with pytest.raises(BlurbkitError, match="the probe output directory is a file; give a folder"):
        check_writable(tmp_path / "afile", "probe output directory", folder=True)
    check_writable(tmp_path / "new", "probe output directory", folder=True)


@pytest.mark.parametrize("meta, why", [
    ("[1]", "meta.json is not an object"),
    ('{"dtype": "foo", "n_tokens": 1}', "data type"),
    ('{"dtype": "uint16"}', "no 'n_tokens'"),
])
def test_a_damaged_token_cache_is_one_line(meta, why, tmp_path):
    import numpy as np

    from blurbkit.pretrain.token_cache import _cache_matches, load_token_cache

    (tmp_path / "meta.json").write_text(meta)
    (tmp_path / "tokens.bin").write_bytes(np.zeros(1, np.uint16).tobytes())
    np.save(tmp_path / "sentences.npy", np.zeros((1, 2), np.int64))
    np.save(tmp_path / "docs.npy", np.zeros(2, np.int64))
    with pytest.raises(BlurbkitError, match="token cache is unreadable") as err:
        load_token_cache(tmp_path)
    assert why in str(err.value)
    assert _cache_matches(tmp_path / "meta.json", {"tokenizer": "x"}) is False  # rebuilt, not crashed on


@pytest.mark.parametrize("featurizers, message", [
    (",", "--featurizers: no featurizer named in ','"),
    ("cls,nosuch", "unknown featurizer 'nosuch'"),
])
def test_cv_featurizers_are_checked_before_a_fold_trains(featurizers, message, shared_data, tmp_path, capsys):
    assert main(["cv", "--dataset", "aimed", "--data", str(shared_data), "--featurizers", featurizers,
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "runs" / "results.sqlite").exists()


def _evaluate_with_an_edited_record(shared_data, tmp_path, capsys, dataset: str, number: int, edit) -> tuple[Path, dict]:
    """Prepare `dataset`, replace test record `number` (0-based) by edit(record), run evaluate on it:
    exit 2 expected. The test file and the original record back."""
    prepared = tmp_path / "prepared"
    if not prepared.exists():
        assert main(["prepare", "--source", str(shared_data), "--datasets", dataset, "--out", str(prepared)]) == 0
        capsys.readouterr()
    test = prepared / dataset / "test.jsonl"
    lines = test.read_text().splitlines()
    record = json.loads(lines[number])
    lines[number] = json.dumps(edit(record))
    test.write_text("\n".join(lines) + "\n")
    (tmp_path / "p.jsonl").write_text("")
    assert main(["evaluate", "--dataset", dataset, "--predictions", str(tmp_path / "p.jsonl"), "--data", str(prepared)]) == 2
    lines[number] = json.dumps(record)
    test.write_text("\n".join(lines) + "\n")  # put back: the next edit starts from the prepared record
    return test, record


def test_a_hand_edited_similarity_score_names_one_expected_kind(shared_data, tmp_path, capsys):
    test, record = _evaluate_with_an_edited_record(shared_data, tmp_path, capsys, "biosses", 0, lambda r: {**r, "score": "x"})
    line = one_error_line(capsys)
    assert f"{test}:1: record {record['id']!r}: 'score' is a string, not a number" in line
    assert "or a number" not in line  # int and float are both "a number" in JSON: named once


def test_a_hand_edited_prepared_record_is_named_by_line(shared_data, tmp_path, capsys):
    test, record = _evaluate_with_an_edited_record(shared_data, tmp_path, capsys, "gad", 2, lambda r: {"id": r["id"], "text": 5})
    assert f"{test}:3: record {record['id']!r}: 'text' is a number, not a string" in one_error_line(capsys)
    _evaluate_with_an_edited_record(shared_data, tmp_path, capsys, "gad", 2, lambda r: {**r, "label": "7"})
    assert "label '7' is not one of gad's labels" in one_error_line(capsys)


@pytest.mark.parametrize("dataset", ["ncbi_disease", "ebm_pico", "gad", "biosses", "hoc", "bioasq"])
def test_real_records_of_every_task_type_pass_the_record_check(dataset, shared_data):
    from blurbkit.data.load import load_split

    assert load_split(dataset, "test", shared_data)  # one dataset per task type (all 13 checked by hand)


@pytest.mark.parametrize("grid, message", [
    ("lr=1e-5;lr=2e-5", "lr is already given"),
    ("bs=16;batch_size=32", "batch_size is already given"),
])
def test_a_grid_key_given_twice_is_refused(grid, message):
    from blurbkit.experiments.protocol import parse_grid

    with pytest.raises(BlurbkitError, match=message):
        parse_grid(grid)


def test_a_study_with_no_variant_named_is_refused(tmp_path, capsys):
    assert main(["ablate", "--study", "relation", "--variants", ",", "--datasets", "chemprot",
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "study relation: no variant named in ','" in one_error_line(capsys)
    assert not list(tmp_path.glob("runs/ablation-*"))


@pytest.mark.parametrize("argv, message", [
    (["compare", "a", "b", "--data", "NOWHERE"], "NOWHERE: data folder not found"),
    (["report", "--data", "NOWHERE", "--out", "site"], "NOWHERE: data folder not found"),
    (["evaluate", "--dataset", "gad", "--predictions", "."], ".: is a directory, not a file"),
    (["cost", "--dataset", "gad", "--import-csv", "nosuch.csv"], "nosuch.csv: file not found"),
])
def test_paths_that_are_not_there_are_named(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "site").exists()


def test_doctor_names_a_runs_folder_that_is_a_file(tmp_path):
    from blurbkit.doctor.disk import disk_checks

    (tmp_path / "afile").write_text("x")
    runs = next(check for check in disk_checks(tmp_path / "afile") if check.name == "runs")
    assert runs.status == "problem" and "is a file, not a folder" in runs.detail
