"""`blurbkit stilt`: the target run starts from the intermediate encoder (weights checked on a tiny
BERT), each intermediate is trained once per seed and reused for every target, an interrupted matrix
resumes without retraining, the table / CSV / heatmap of a small matrix, and bad input refused."""

from __future__ import annotations

import csv
import sys
import types
from pathlib import Path

import pytest
from conftest import fake_model_dir
from sync_executor import SyncExecutor

from blurbkit.cli.main import main
from blurbkit.store.results import ResultsStore

# Scores the fake fine-tuning gives: dataset's baseline, plus a fixed change per intermediate task.
BASE = {"gad": 0.50, "biosses": 0.40, "bc5chem": 0.60}
CHANGE = {"gad": 0.02, "biosses": -0.03, "bc5chem": 0.01}


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    """A model directory that passes the checks and a fine-tuning that trains nothing but writes the
    model directory a kept model would have: the planning, store and reuse logic alone."""
    model = fake_model_dir(tmp_path)
    trained = []

    def run_finetune(config):
        if stop_after[0] is not None and len(trained) >= stop_after[0]:
            raise KeyboardInterrupt
        trained.append(config)
        source = Path(config.model).parts[-3] if config.model != str(model) else None  # .../baseline/SOURCE/seedN-x/model
        score = BASE[config.dataset] + (CHANGE[source] if source else 0.0)
        score += 0.01 * config.seed
        if config.save_model:
            (config.out / "model").mkdir(parents=True)
            (config.out / "model" / "config.json").write_text("{}")
        failed = config.dataset == "bc5chem" and source is None and config.seed == 0  # as if no better than trivial
        return {"metric": "m", "test": {"score": score, "failed": failed}, "dev": {"score": score}, "wall_seconds": 0.0,
                "notes": []}

    stop_after: list[int | None] = [None]
    monkeypatch.setitem(sys.modules, "blurbkit.train.run", types.SimpleNamespace(run_finetune=run_finetune))
    return model, trained, stop_after


def _matrix(model, runs, *extra):
    return ["stilt", "--matrix", "--datasets", "gad,biosses,bc5chem", "--seeds", "2", "--model", str(model),
            "--runs-dir", str(runs), "--no-progress", *extra]


def test_each_intermediate_is_trained_once_per_seed_and_reused_for_every_target(fake_runs, tmp_path, capsys):
    model, trained, _ = fake_runs
    runs = tmp_path / "runs"
    assert main(_matrix(model, runs)) == 0
    err = capsys.readouterr().err
    assert "3 baselines (incl. 3 intermediate run(s), models kept) + 6 transfer run(s) = 9 runs per seed x 2 seeds = 18 runs" in err
    assert "0 stored, 18 to train" in err
    assert "Relation extraction -> Sentence similarity (across task types, e.g. gad -> biosses): the fine-tuned encoder transfers" in err
    assert len(trained) == 18
    from_base = [c for c in trained if c.model == str(model)]
    assert sorted((c.dataset, c.seed) for c in from_base) == sorted((d, s) for d in BASE for s in range(2))
    assert all(c.save_model for c in from_base)  # the intermediates keep their models
    for seed in range(2):
        for source in BASE:
            (intermediate,) = [c for c in from_base if c.dataset == source and c.seed == seed]
            users = [c for c in trained if c.model == str(intermediate.out / "model")]
            # one intermediate of this seed, reused by both other targets, never retrained for them
            assert sorted(c.dataset for c in users) == sorted(set(BASE) - {source})
            assert all(c.seed == seed and not c.save_model for c in users)
            assert trained.index(intermediate) < min(trained.index(c) for c in users)


def test_an_interrupted_matrix_resumes_without_retraining(fake_runs, tmp_path, capsys):
    model, trained, stop_after = fake_runs
    runs = tmp_path / "runs"
    stop_after[0] = 5  # three baselines and two transfers of seed 0, then Ctrl-C
    assert main(_matrix(model, runs)) == 130
    assert len(trained) == 5
    stop_after[0] = None
    assert main(_matrix(model, runs, "--plan")) == 0
    assert "5 stored, 13 to train" in capsys.readouterr().err
    assert len(trained) == 5  # --plan trains nothing
    assert main(_matrix(model, runs, "--table-only", "--report", "partial")) == 0
    # seed 0 only: the baselines and the two transfers after GAD
    biosses = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| BIOSSES "))
    assert biosses == "| BIOSSES (sentence similarity) | 40.00 ± 0.00 [n=1] | 42.00 (+2.00) [n=1] | · | — |"
    assert len(trained) == 5 and (runs / "partial.md").is_file()
    assert main(_matrix(model, runs)) == 0
    again = trained[5:]
    assert len(again) == 13
    assert not any(c.model == str(model) and c.seed == 0 for c in again)  # seed 0's intermediates not retrained
    assert len(ResultsStore(runs / "results.sqlite").rows(study="stilt")) == 18


def test_table_csv_and_heatmap_of_a_small_matrix(fake_runs, tmp_path, capsys):
    model, _, _ = fake_runs
    runs = tmp_path / "runs"
    assert main(_matrix(model, runs, "--report", "m")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| target \\ intermediate | none (baseline) | GAD | BIOSSES | BC5-chem |"
    gad = next(line for line in out if line.startswith("| GAD "))
    # mean over seeds 0 and 1 of 0.50 / 0.51: 50.50; after BIOSSES -3 points, after BC5-chem +1
    assert gad == "| GAD (relation extraction) | 50.50 ± 0.71 | · | 47.50 (-3.00) | 51.50 (+1.00) |"
    assert any(line.startswith("BUDGET RUN") for line in out) is False  # a full-budget matrix says none
    # The paper's baselines of these targets beside ours; none of its listed transfers is in this matrix.
    assert "| *GAD, BERT-base (published)* | 78.93 |  |  |  |" in out
    assert "| *BC5-chem, PubMedBERT (published)* | 92.97 |  |  |  |" in out
    assert not any(line.startswith("| *BIOSSES") for line in out) and any(line.startswith("Published rows: Jeong") for line in out)
    assert next(line for line in out if line.startswith("| BC5-chem ")).startswith("| BC5-chem (named entity recognition) | 60.50 ± 0.71 †1 |")
    rows = list(csv.DictReader((runs / "m.csv").open()))
    assert len(rows) == 3 + 6
    cell = next(r for r in rows if r["target"] == "biosses" and r["intermediate"] == "gad")
    assert (cell["n"], cell["failed"], cell["mean"], cell["baseline"], cell["diff"]) == ("2", "0", "42.5000", "40.5000", "2.0000")
    assert cell["target_task"] == "similarity" and cell["intermediate_task"] == "relation"
    assert (runs / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (runs / "m.svg").read_bytes()[:400]


def test_a_kept_intermediate_that_lost_its_model_is_trained_again(fake_runs, tmp_path, capsys):
    model, trained, _ = fake_runs
    runs = tmp_path / "runs"
    # gad as a target only: its baseline keeps no model ...
    assert main(["stilt", "--intermediate", "biosses", "--target", "gad", "--seeds", "1", "--model", str(model),
                 "--runs-dir", str(runs), "--no-progress"]) == 0
    gad = next(c for c in trained if c.dataset == "gad" and c.model == str(model))
    assert not gad.save_model and len(trained) == 3
    # ... so when gad becomes the intermediate, its stored baseline is trained again with the model kept.
    assert main(["stilt", "--intermediate", "gad", "--target", "biosses", "--seeds", "1", "--model", str(model),
                 "--runs-dir", str(runs), "--no-progress"]) == 0
    assert "intermediate stored but its model is not in" in capsys.readouterr().err
    assert [(c.dataset, c.save_model, c.model == str(model)) for c in trained[3:]] == [
        ("gad", True, True), ("biosses", False, False)]


@pytest.mark.parametrize(("argv", "message"), [
    (["--intermediate", "gad", "--target", "gad"], "--intermediate and --target are the same dataset (gad)"),
    (["--intermediate", "gad", "--target", "nosuch"], "nosuch"),
    (["--intermediate", "gad"], "give --intermediate A and --target B, or --matrix --datasets LIST"),
    (["--matrix", "--datasets", "gad"], "--matrix needs at least two datasets"),
    (["--matrix", "--datasets", "gad,ddi,gad"], "--datasets names gad more than once"),
    (["--matrix"], "--matrix needs --datasets LIST"),
    (["--matrix", "--datasets", "gad,ddi", "--target", "ddi"], "--matrix takes --datasets, not --intermediate/--target"),
])
def test_bad_input_is_one_line_before_any_training(fake_runs, tmp_path, capsys, argv, message):
    model, trained, _ = fake_runs
    runs = tmp_path / "runs"
    assert main(["stilt", *argv, "--model", str(model), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blurbkit: error: ") and message in err[0]
    assert trained == [] and not runs.exists()


def test_the_target_run_starts_from_the_intermediate_encoder(shared_data, tmp_path, monkeypatch):
    """Real fine-tuning on a tiny random BERT: the target's encoder, as built before its first step,
    has the intermediate's fine-tuned weights (which differ from the pretrained ones); its head is new."""
    from safetensors.torch import load_file

    import blurbkit.train.run as train_run
    from blurbkit.models.tiny import build_tiny_bert

    original = build_tiny_bert(tmp_path / "tiny", hidden=32, layers=2)
    built = []
    real_build = train_run.build_model

    def spy(recipe, model_dir, **kwargs):
        model, tokenizer = real_build(recipe, model_dir, **kwargs)
        built.append((recipe.dataset, Path(model_dir), {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return model, tokenizer

    monkeypatch.setattr(train_run, "build_model", spy)
    runs = tmp_path / "runs"
    assert main(["stilt", "--intermediate", "gad", "--target", "biosses", "--seeds", "1", "--data", str(shared_data),
                 "--model", str(original), "--runs-dir", str(runs), "--epochs", "1", "--batch-size", "8", "--lr", "1e-3",
                 "--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "8",
                 "--max-length", "32", "--no-progress"]) == 0
    assert [(dataset, path == original) for dataset, path, _ in built] == [("gad", True), ("biosses", True), ("biosses", False)]
    _, intermediate_dir, target_start = built[2]
    assert intermediate_dir.parts[-4:-2] == ("baseline", "gad") and intermediate_dir.name == "model"
    tuned = load_file(str(intermediate_dir / "model.safetensors"))
    pretrained = load_file(str(original / "model.safetensors"))
    encoder = {k.removeprefix("encoder."): v for k, v in target_start.items() if k.startswith("encoder.")}
    assert set(tuned) <= set(encoder)
    moved = [k for k in tuned if not (tuned[k] == pretrained[k]).all()]
    assert len(moved) > len(tuned) // 2  # the intermediate run did train the encoder
    for name, value in tuned.items():
        assert (encoder[name] == value).all(), name  # the target starts from the tuned encoder ...
    # ... while the baseline of the target starts from the pretrained one, and the heads differ in shape
    baseline_start = {k.removeprefix("encoder."): v for k, v in built[1][2].items() if k.startswith("encoder.")}
    assert all((baseline_start[k] == pretrained[k]).all() for k in pretrained if k in baseline_start)
    gad_head = {k: v.shape for k, v in built[0][2].items() if not k.startswith("encoder.")}
    biosses_head = {k: v.shape for k, v in target_start.items() if not k.startswith("encoder.")}
    assert gad_head != biosses_head


def test_the_matrix_through_an_executor_submits_a_transfer_after_its_intermediate(fake_runs, tmp_path, capsys, monkeypatch):
    import blurbkit.experiments.executor_choice as executors

    model, trained, _ = fake_runs
    executor = SyncExecutor()
    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: executor)
    runs = tmp_path / "runs"
    assert main(_matrix(model, runs, "--executor", "local", "--report", "m")) == 0
    captured = capsys.readouterr()
    assert len(trained) == 18 and len(executor.submitted) == 18
    gad = next(line for line in captured.out.splitlines() if line.startswith("| GAD "))
    assert gad == "| GAD (relation extraction) | 50.50 ± 0.71 | · | 47.50 (-3.00) | 51.50 (+1.00) |"
    for config in trained:
        if config.model != str(model):  # a transfer: its intermediate was trained (and stored) before it
            assert any(c.out / "model" == Path(config.model) for c in trained[:trained.index(config)])
    # Stored runs are skipped on the executor path too.
    assert main(_matrix(model, runs, "--executor", "local")) == 0
    assert len(trained) == 18
    assert main(_matrix(model, runs, "--workers", "2")) == 2
    assert "--workers: only with --executor local|ray" in capsys.readouterr().err


def test_a_difference_uses_only_the_seeds_both_the_transfer_and_its_baseline_have():
    from blurbkit.experiments.stilt import collect

    class Run(types.SimpleNamespace):
        pass

    runs = [Run(target="biosses", source=None, seed=s, key=types.SimpleNamespace(digest=lambda s=s: f"b{s}"))
            for s in range(3)]
    runs += [Run(target="biosses", source="gad", seed=s, key=types.SimpleNamespace(digest=lambda s=s: f"t{s}"))
             for s in range(3)]
    plan = types.SimpleNamespace(runs=lambda: runs)
    # baseline seed 2 failed (--keep-going); the transfer equals the baseline on seeds 0 and 1
    rows = [{"run_key": f"b{s}", "test_score": 0.5 + 0.1 * s} for s in range(2)]
    rows += [{"run_key": f"t{s}", "test_score": [0.5, 0.6, 0.2][s]} for s in range(3)]
    cell = collect(plan, rows)[("biosses", "gad")]
    assert cell.diff == pytest.approx(0.0) and cell.mean == pytest.approx(43.333, abs=1e-3)


def test_published_cells_are_the_papers_scores_and_differences_from_its_baseline():
    from blurbkit.experiments.stilt_report import published_rows

    rows = {(target, model): cells for target, model, cells in
            published_rows(["bioasq", "pubmedqa", "biosses"], ["ddi", "chemprot", "bioasq"])}
    assert rows == {
        ("bioasq", "BERT-base"): ["61.43", "76.66 (+15.23)", "75.48 (+14.05)", ""],
        ("bioasq", "PubMedBERT"): ["84.29", "92.15 (+7.86)", "", ""],
        ("pubmedqa", "BERT-base"): ["50.6", "58.50 (+7.9)", "58.30 (+7.7)", ""],  # as printed: 50.6
        ("pubmedqa", "PubMedBERT"): ["55.00", "", "62.30 (+7.30)", "65.40 (+10.40)"],
    }  # BIOSSES: the notes keep no STILT cell of it
