"""`blurbkit store export|merge`: runs carried between stores whole (every column), a finished run
never replaced, a failed one giving way to a finished one, models renamed with their keys, and bad
input refused before the receiving store is touched. (A sweep resumed from merged runs on another
machine: tests/test_grid_sweep.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.store.labels import DEFAULT_STORE_LABEL, store_label
from blurbkit.store.results import COLUMNS, ResultsStore, RunKey, read_rows

OTHER_MACHINE_MODEL = "/scratch/alice/models/biobert-small"


def _key(seed: int, dataset: str = "biosses", model: str = DEFAULT_STORE_LABEL) -> RunKey:
    return RunKey("stability", "standard", model, dataset, seed, "full", json.dumps({"lr": 3e-5, "epochs": 30}, sort_keys=True))


def _metrics(score: float, threads: int | None = 2) -> dict:
    return {"metric": "pearson", "test": {"score": score, "trivial_score": 0.0}, "dev": {"score": score + 0.01},
            "wall_seconds": 95.5, "train_examples_per_second": 12.25, "notes": ["a note"], "threads": threads,
            "precision": "bfloat16"}


def _make_store(path: Path) -> Path:
    store = ResultsStore(path)
    store.add(_key(0), _metrics(0.5), "abc123", "/runs/seed0")
    store.add(_key(1, "gad"), _metrics(0.75, None), "abc123", None)
    store.add(_key(0, model=OTHER_MACHINE_MODEL), _metrics(0.25), "abc123", "/scratch/alice/runs/seed0")
    store.add_failed(_key(2), "pearson", "loss became NaN at epoch 3", "abc123", "/runs/seed2")
    store.close()
    return path


def _columns(path: Path) -> list[tuple]:
    return sorted(tuple(row[name] for name in COLUMNS) for row in read_rows(path))


def test_export_then_merge_carries_every_column_of_every_run(tmp_path, capsys):
    source = _make_store(tmp_path / "a.sqlite")
    export = tmp_path / "runs.jsonl"
    assert main(["store", "export", "--store", str(source), "--out", str(export)]) == 0
    assert "exported 4 run(s) (1 failed)" in capsys.readouterr().out
    lines = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["test_metrics"] == {"score": 0.5, "trivial_score": 0.0} and lines[0]["notes"] == ["a note"]
    assert main(["store", "merge", str(export), "--into", str(tmp_path / "b.sqlite")]) == 0
    assert _columns(tmp_path / "b.sqlite") == _columns(source)
    # A store is a source as it is, and merging twice adds nothing; a run is counted once, however many sources hold it.
    assert main(["store", "merge", str(source), str(export), "--into", str(tmp_path / "b.sqlite")]) == 0
    assert "0 run(s) added, 0 failed run(s) replaced by finished ones, 4 already there" in capsys.readouterr().out
    assert main(["store", "merge", str(export), str(export), "--into", str(tmp_path / "c.sqlite")]) == 0
    assert "4 run(s) added, 0 failed run(s) replaced by finished ones, 0 already there" in capsys.readouterr().out
    assert _columns(tmp_path / "b.sqlite") == _columns(source)


def test_an_export_that_travels_can_leave_this_machines_run_dirs_out(tmp_path):
    source = _make_store(tmp_path / "a.sqlite")
    out = tmp_path / "runs.jsonl"
    assert main(["store", "export", "--store", str(source), "--out", str(out), "--no-run-dirs"]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4 and all(line["run_dir"] is None for line in lines)
    assert main(["store", "merge", str(out), "--into", str(tmp_path / "b.sqlite")]) == 0
    assert len(read_rows(tmp_path / "b.sqlite")) == 4


def test_export_selects_by_study_and_dataset(tmp_path, capsys):
    source = _make_store(tmp_path / "a.sqlite")
    out = tmp_path / "gad.jsonl"
    assert main(["store", "export", "--store", str(source), "--out", str(out), "--dataset", "gad"]) == 0
    assert [json.loads(line)["seed"] for line in out.read_text(encoding="utf-8").splitlines()] == [1]
    assert main(["store", "export", "--store", str(source), "--out", str(tmp_path / "x.jsonl"), "--study", "protocol"]) == 2
    assert "no runs of study 'protocol' in the store (studies here: stability); nothing written" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_a_finished_run_is_never_replaced_and_a_failed_one_gives_way(tmp_path, capsys):
    into = ResultsStore(tmp_path / "into.sqlite")
    into.add(_key(0), _metrics(0.5), "mine", None)
    into.add_failed(_key(2), "pearson", "out of memory", "mine", None)
    into.close()
    other = ResultsStore(tmp_path / "other.sqlite")
    other.add(_key(0), _metrics(0.9), "theirs", None)  # the same run, another score: the store's own stays
    other.add(_key(2), _metrics(0.6), "theirs", None)  # finished where the store's failed
    other.add(_key(3), _metrics(0.7), "theirs", None)
    other.close()
    assert main(["store", "merge", str(tmp_path / "other.sqlite"), "--into", str(tmp_path / "into.sqlite")]) == 0
    assert "1 run(s) added, 1 failed run(s) replaced by finished ones, 1 already there" in capsys.readouterr().out
    rows = {r["seed"]: r for r in read_rows(tmp_path / "into.sqlite")}
    assert (rows[0]["test_score"], rows[0]["blurbkit_commit"]) == (0.5, "mine")
    assert (rows[2]["status"], rows[2]["test_score"], rows[2]["error"]) == ("ok", 0.6, None)
    assert rows[3]["test_score"] == 0.7 and ResultsStore(tmp_path / "into.sqlite").has(_key(3))


def test_relabel_model_renames_the_runs_of_a_model_with_the_keys_they_get_here(tmp_path, capsys):
    source = _make_store(tmp_path / "a.sqlite")
    here = tmp_path / "models" / "biobert-small"
    into = tmp_path / "b.sqlite"
    assert main(["store", "merge", str(source), "--into", str(into),
                 "--relabel-model", f"{OTHER_MACHINE_MODEL}={here}"]) == 0
    renamed = [r for r in read_rows(into) if r["model"] == store_label(here)]
    assert len(renamed) == 1 and ResultsStore(into).has(_key(0, model=str(here.resolve())))
    assert not any(r["model"] == OTHER_MACHINE_MODEL for r in read_rows(into))


def _export_lines(tmp_path: Path) -> list[dict]:
    source = _make_store(tmp_path / "a.sqlite")
    assert main(["store", "export", "--store", str(source), "--out", str(tmp_path / "runs.jsonl")]) == 0
    return [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text(encoding="utf-8").splitlines()]


def _edit_dataset(lines):
    lines[1]["dataset"] = "chemprot"  # a run that claims to be another run's


def _edit_seed(lines):
    lines[1]["seed"] = -1


def _twice(lines):
    lines.append(dict(lines[0], test_score=0.99))


def _status(lines):
    lines[0]["status"] = "done"


def _nan(lines):
    lines[0]["wall_seconds"] = float("nan")


def _huge_threads(lines):
    lines[0]["threads"] = 10**30  # SQLite's integers stop at 2**63


def _notes(lines):
    lines[0]["notes"] = [{"a": 1}, 3]


def _precision(lines):
    lines[0]["precision"] = "fp64"


@pytest.mark.parametrize("edit, line, message", [
    (_edit_dataset, 2, "run_key does not match the run's study/variant/model/dataset/seed/budget/hyperparameters"),
    (_edit_seed, 2, "seed must be an integer from 0 to"),
    (_twice, 5, "is given twice with different contents (first on line 1)"),
    (_status, 1, "status must be 'ok' or 'failed', not 'done'"),
    (_nan, 1, "wall_seconds must be a finite number or null"),
    (_huge_threads, 1, "threads must be an integer from 1 to"),
    (_notes, 1, "notes must be a list of strings"),
    (_precision, 1, "precision must be one of fp32, bfloat16, float16, or null"),
])
def test_a_bad_export_line_is_one_error_naming_it_and_nothing_is_merged(tmp_path, capsys, edit, line, message):
    lines = _export_lines(tmp_path)
    edit(lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(obj) + "\n" for obj in lines), encoding="utf-8")
    into = tmp_path / "into.sqlite"
    capsys.readouterr()
    assert main(["store", "merge", str(tmp_path / "a.sqlite"), str(bad), "--into", str(into)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"blurbkit: error: {bad}:{line}: ") and message in err[0]
    assert not into.exists()


def test_merge_refuses_its_own_store_an_unknown_relabel_and_a_foreign_database(tmp_path, capsys):
    source = _make_store(tmp_path / "a.sqlite")
    before = _columns(source)
    assert main(["store", "merge", str(source), "--into", str(source)]) == 2
    assert "is both a source and --into" in capsys.readouterr().err
    assert main(["store", "merge", str(source), "--into", str(tmp_path / "b.sqlite"), "--relabel-model", "/nowhere=/x"]) == 2
    assert "no run of model '/nowhere' in the sources" in capsys.readouterr().err
    assert main(["store", "merge", str(source), "--into", str(tmp_path / "b.sqlite"), "--relabel-model", "nothing"]) == 2
    assert "expected OLD=NEW" in capsys.readouterr().err
    assert main(["store", "export", "--store", str(source), "--out", str(source)]) == 2
    assert "--out is the store itself" in capsys.readouterr().err
    (tmp_path / "notes.sqlite").write_bytes(b"\xd0\xcf\x11\xe0 a spreadsheet, not SQLite")
    assert main(["store", "merge", str(tmp_path / "notes.sqlite"), "--into", str(tmp_path / "b.sqlite")]) == 2
    assert f"{tmp_path / 'notes.sqlite'}: not an SQLite results store (nor an export file" in capsys.readouterr().err
    assert main(["store", "merge", str(tmp_path / "typo.sqlite"), "--into", str(tmp_path / "b.sqlite")]) == 2
    assert f"{tmp_path / 'typo.sqlite'}: file not found" in capsys.readouterr().err  # a mistyped path is just missing
    assert main(["store", "export", "--store", str(tmp_path), "--out", str(tmp_path / "e.jsonl")]) == 2
    assert f"{tmp_path}: a directory, not a results store file" in capsys.readouterr().err
    assert not (tmp_path / "b.sqlite").exists() and _columns(source) == before


def test_a_benchmark_cell_of_mixed_precisions_says_so_and_rows_that_did_not_record_one_are_not_counted(tmp_path):
    from blurbkit.experiments.benchmark import summarise

    store = ResultsStore(tmp_path / "s.sqlite")
    for seed, precision in ((0, "bfloat16"), (1, "fp32"), (2, None)):
        store.add(_key(seed), dict(_metrics(0.5), precision=precision), "abc", None)
    store.add(_key(0, "gad"), _metrics(0.5), "abc", None)
    store.add(_key(1, "gad"), dict(_metrics(0.5), precision=None), "abc", None)
    cells = summarise(store.rows())["standard"]
    assert "MIXED PRECISION: 1 run(s) bfloat16, 1 run(s) fp32" in cells["biosses"]["notes"]
    assert not any("MIXED" in note for note in cells["gad"]["notes"])


def _foreign_database(path: Path, runs_table: bool) -> Path:
    import sqlite3

    with sqlite3.connect(path) as db:  # MLflow's database has a `runs` table too
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, run_uuid TEXT, name TEXT)" if runs_table
                   else "CREATE TABLE t (x INTEGER)")
        db.execute("INSERT INTO runs (run_uuid, name) VALUES ('u1', 'n1')" if runs_table else "INSERT INTO t VALUES (1)")
    db.close()
    return path


@pytest.mark.parametrize("runs_table", [True, False])
def test_another_programs_database_is_neither_read_as_runs_nor_written_into(tmp_path, capsys, runs_table):
    foreign = _foreign_database(tmp_path / "other.db", runs_table)
    before = foreign.read_bytes()
    store = _make_store(tmp_path / "a.sqlite")
    assert main(["store", "merge", str(foreign), "--into", str(tmp_path / "b.sqlite")]) == 2
    assert "not a blurbkit results store" in capsys.readouterr().err and not (tmp_path / "b.sqlite").exists()
    assert main(["store", "export", "--store", str(foreign), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "not a blurbkit results store" in capsys.readouterr().err and not (tmp_path / "x.jsonl").exists()
    assert main(["store", "merge", str(store), "--into", str(foreign)]) == 2
    assert "not a blurbkit results store" in capsys.readouterr().err
    assert foreign.read_bytes() == before and not Path(f"{foreign}-wal").exists()


def test_runs_stored_without_a_score_travel_both_ways(tmp_path, capsys):
    """The cost table's rows are finished runs with timings and no score (experiments/cost_store.py)."""
    store = ResultsStore(tmp_path / "a.sqlite")
    key = RunKey("cost", "epoch", DEFAULT_STORE_LABEL, "chemprot", 0, "full", json.dumps({"batch_size": 32}))
    store.add(key, {"metric": "seconds", "test": {}, "dev": {}, "wall_seconds": 12.5}, "abc", None)
    store.close()
    assert main(["store", "export", "--store", str(tmp_path / "a.sqlite"), "--out", str(tmp_path / "cost.jsonl")]) == 0
    assert main(["store", "merge", str(tmp_path / "cost.jsonl"), "--into", str(tmp_path / "b.sqlite")]) == 0
    assert _columns(tmp_path / "b.sqlite") == _columns(tmp_path / "a.sqlite")


def test_a_merge_that_fails_while_writing_merges_nothing_and_leaves_no_new_store(tmp_path, capsys, monkeypatch):
    import sqlite3

    source = _make_store(tmp_path / "a.sqlite")

    def broken(self, rows, choose):
        raise sqlite3.IntegrityError("disk said no")

    monkeypatch.setattr(ResultsStore, "merge", broken)
    assert main(["store", "merge", str(source), "--into", str(tmp_path / "new.sqlite")]) == 2
    assert "nothing merged (disk said no)" in capsys.readouterr().err
    assert not list(tmp_path.glob("new.sqlite*"))
    existing = _make_store(tmp_path / "old.sqlite")
    before = _columns(existing)
    assert main(["store", "merge", str(source), "--into", str(existing)]) == 2
    assert existing.exists() and _columns(existing) == before  # a store that was there stays
