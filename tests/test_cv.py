"""`blurbkit cv`: document-disjoint folds covering every instance once, the per-fold table through
the results store, and one-line refusals."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import fake_model_dir

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore

PROTEINS = ["IL-2", "p53", "MDM2", "TNF", "CD28", "Id3", "ITF-2b", "BRCA1"]


def document(record_id: str) -> str:
    """'AIMed.d193.s1641_AIMed.d193.s1641.p0' -> 'AIMed.d193' (the abstract a pair comes from)."""
    return re.match(r"^(.*?\.d\d+)\.", record_id).group(1)


def write_mini_ppi(home: Path, folds: int = 4, docs_per_fold: int = 2) -> Path:
    """A user dataset in AIMed's format: `folds` fold files, two abstracts each, pairs per sentence."""
    source = home / "minippi"
    source.mkdir(parents=True)
    n = 0
    for k in range(folds):
        lines = []
        for d in range(docs_per_fold):
            doc = k * docs_per_fold + d
            for s in range(3):
                a, b = PROTEINS[(doc + s) % 8], PROTEINS[(doc + s + 3) % 8]
                text = f"{a} binds {b} in vitro." if (doc + s) % 2 else f"{a} and {b} were measured separately."
                rel = {"relation_type": "positive" if (doc + s) % 2 else "negative",
                       "entity_1_idx": [[0, len(a)]], "entity_2_idx": [[text.index(b), text.index(b) + len(b)]],
                       "entity_1_type": "protein", "entity_2_type": "protein"}
                lines.append(json.dumps({"id": f"Mini.d{doc}.s{s}.p0", "text": text, "relation": [rel]}))
                n += 1
        (source / f"test_{k}.json").write_text("\n".join(lines) + "\n")
    registry = home / "datasets"
    registry.mkdir(parents=True, exist_ok=True)
    (registry / "minippi.toml").write_text(
        f'title = "MiniPPI"\ntask_type = "relation"\nreader = "aimed"\nsource = "{source}"\n'
        'files = { folds = "test_{k}.json" }\nlabels = ["negative", "positive"]\nnegative_label = "negative"\n'
        'entity_types = ["PROTEIN"]\nmax_length = 32\nin_blurb = false\noriginal_text = true\n'
        'recipe = { lr = 5e-5, batch_size = 4, epochs = 1 }\nseeds = 1\n')
    return source


@pytest.fixture
def mini_ppi() -> Path:
    return write_mini_ppi(Path(os.environ["BLURBKIT_HOME"]))  # the test's own home (conftest)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def test_aimed_folds_are_document_disjoint_and_cover_every_instance_once(shared_data):
    from blurbkit.data.readers.aimed import fold_split, read_aimed
    from blurbkit.data.readers.base import ReadOptions
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset("aimed")
    source = shared_data / "aimed"
    tests = [read_aimed(spec, source, "test", ReadOptions(fold=k)).records for k in range(10)]
    ids = [r["id"] for fold in tests for r in fold]
    on_disk = sum(1 for k in range(10) for line in (source / f"test_{k}.json").read_text().splitlines() if line.strip())
    assert len(ids) == len(set(ids)) == on_disk == 5834  # every instance in exactly one test fold
    docs = [{document(r["id"]) for r in fold} for fold in tests]
    assert sum(len(d) for d in docs) == len(set().union(*docs)) == 220  # no abstract in two folds
    for k in range(10):  # and within a run: train, dev and test never share an abstract
        parts = fold_split(k, 10)
        assert sorted(parts["train"] + parts["dev"] + parts["test"]) == list(range(10)) and parts["test"] == [k]
        used = [set().union(*(docs[j] for j in parts[split])) for split in ("train", "dev", "test")]
        assert not (used[0] & used[1] or used[0] & used[2] or used[1] & used[2])


def test_fold_count_and_coverage_of_a_user_dataset(mini_ppi):
    from blurbkit.data.folds import fold_count
    from blurbkit.experiments.cv import fold_coverage

    assert fold_count("minippi", None) == 4
    assert fold_coverage("minippi", None, 4) == {"instances": 24, "repeated": 0}
    assert fold_coverage("minippi", None, 2) == {"instances": 12, "repeated": 0}


def test_cv_runs_every_fold_through_the_store(mini_ppi, tiny_model, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["cv", "--dataset", "minippi", "--model", str(tiny_model), "--runs-dir", str(runs), "--epochs", "1",
            "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if re.match(r"^\| \d ", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "1", "2", "3"]
    assert [row.split("|")[2].strip() for row in rows] == ["6", "6", "6", "6"]  # each fold's whole test split
    assert "**mean ± std**" in captured.out and "4-fold cross-validation (default)" in captured.out
    assert "hold 24 instances, each once" in captured.out
    stored = ResultsStore(runs / "results.sqlite").rows(study="cv")
    assert sorted(json.loads(r["hyperparameters"])["fold"] for r in stored) == [0, 1, 2, 3]
    assert (runs / "cv-minippi-default-full.csv").read_text().count("\n") == 5
    assert (runs / "cv-minippi-default-full.png").is_file()
    # Resumable: stored folds are not trained again; another featurizer is another set of runs.
    assert main(argv) == 0
    assert captured.err.count("test relation_micro_f1") == 4 and capsys.readouterr().err.count("already stored") == 4
    assert main([*argv, "--folds", "2", "--featurizers", "cls,sll_attention"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("already stored") == 2 and captured.err.count("test relation_micro_f1") == 2
    assert "featurizer=sll_attention" in captured.out and "Only folds 0..1 of 4" in captured.out
    compare = [line for line in captured.out.splitlines() if line.startswith(("| default |", "| featurizer="))]
    assert len(compare) == 2 and compare[1].endswith("(n=2) |")
    assert (runs / "cv-minippi-compare-full.md").is_file()
    # The tables of what is stored, training nothing.
    assert main([*argv, "--folds", "3", "--featurizer", "sll_attention", "--report-only"]) == 0
    captured = capsys.readouterr()
    assert "over 2 folds (1 missing)" in captured.out and "test relation_micro_f1" not in captured.err


def test_cv_bad_inputs_are_one_line(mini_ppi, capsys):
    assert main(["cv", "--dataset", "chemprot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chemprot has no cross-validation folds" in err[0] and "minippi" in err[0]
    assert main(["cv", "--dataset", "minippi", "--folds", "5"]) == 2
    assert "--folds 5: the dataset has 4 folds" in capsys.readouterr().err
    assert main(["cv", "--dataset", "minippi", "--fold", "2"]) == 2
    assert "--fold is what cv varies" in capsys.readouterr().err


def test_cv_folds_on_an_executor(mini_ppi, tmp_path, capsys, monkeypatch):
    """The folds through an executor (in this process here, the worker's own code): every fold stored
    once, the same table; --report-only trains nothing, so an executor with it is refused."""
    import sys
    import types

    from sync_executor import SyncExecutor

    import blurbkit.experiments.executor_choice as executors

    model = fake_model_dir(tmp_path)

    def run_finetune(config):
        test = {"score": 0.5 + 0.1 * config.fold, "precision": 0.5, "recall": 0.5, "n": 6, "n_gold": 3}
        return {"metric": "relation_micro_f1", "test": test, "dev": {"score": 0.5}, "wall_seconds": 0.0, "notes": []}

    monkeypatch.setitem(sys.modules, "blurbkit.train.run", types.SimpleNamespace(run_finetune=run_finetune))
    executor = SyncExecutor()
    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: executor)
    argv = ["cv", "--dataset", "minippi", "--model", str(model), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main([*argv, "--executor", "local"]) == 0
    out = capsys.readouterr().out
    assert len(executor.submitted) == 4 and sorted(t.config.fold for t in executor.submitted) == [0, 1, 2, 3]
    assert [line.split("|")[6].strip() for line in out.splitlines() if re.match(r"^\| \d ", line)] == ["50.00", "60.00", "70.00", "80.00"]
    assert main([*argv, "--report-only", "--executor", "local"]) == 2
    assert "--report-only trains nothing: leave out --executor" in capsys.readouterr().err
