"""The search study (`ablate --study search`, Table 9 shape): standard recipe vs the dev-selected grid
without and with stabilisation. The two stages (selection on dev, then the test seeds on the chosen
point) run on a fake fine-tuning whose dev score is set per grid point and seed, in this process and
on an in-process executor; a tiny BERT runs the study end to end on the real data."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest
from conftest import fake_model_dir
from sync_executor import SyncExecutor

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.experiments.search_study import FIRST_SELECTION_SEED, choose_point, plan_searches
from blurbkit.experiments.stability import get_stability_study
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore
from blurbkit.train.config import FinetuneConfig

GRID = "lr=1e-5,3e-5,5e-5;bs=16;epochs=3;select=2"
# Dev score per (lr, selection seed): 5e-5 has the best single run (0.95) but 3e-5 the best mean.
DEV = {1e-5: (0.40, 0.42), 3e-5: (0.70, 0.72), 5e-5: (0.95, 0.30)}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A model directory that passes the checks and a fine-tuning that writes a finished run directory;
    dev scores from DEV on selection seeds, test scores by seed (and 0.1 more after the train+dev retrain)."""
    model = fake_model_dir(tmp_path)
    state = types.SimpleNamespace(model=model, trained=[])

    def run_finetune(config):
        state.trained.append(config)
        seed = config.seed - FIRST_SELECTION_SEED
        dev = DEV[config.lr][seed] if 0 <= seed < 2 and config.lr in DEV else 0.5
        test = 0.5 + 0.01 * config.seed + (0.1 if config.final_on_train_dev else 0.0)
        metrics = {"metric": "pearson", "test": {"score": test, "trivial_score": 0.0}, "dev": {"score": dev},
                   "wall_seconds": 0.0, "notes": []}
        if config.out is not None:
            config.out.mkdir(parents=True, exist_ok=True)
            (config.out / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    monkeypatch.setitem(sys.modules, "blurbkit.train.run", types.SimpleNamespace(run_finetune=run_finetune))
    return state


def _argv(model, runs, *extra):
    return ["ablate", "--study", "search", "--datasets", "biosses", "--seeds", "2", "--grid", GRID,
            "--model", str(model), "--runs-dir", str(runs), "--no-progress", *extra]


def _by_variant(runs: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in ResultsStore(runs / "results.sqlite").rows(study="search"):
        out.setdefault(row["variant"], []).append(row)
    return out


def test_the_best_mean_dev_point_is_chosen_and_the_test_seeds_run_on_it(fake, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(_argv(fake.model, runs)) == 0
    out = capsys.readouterr().out
    selection = [c for c in fake.trained if c.seed >= FIRST_SELECTION_SEED]
    tests = [c for c in fake.trained if c.seed < FIRST_SELECTION_SEED and c.lr is not None]
    standard = [c for c in fake.trained if c.lr is None]
    # 3 points x 2 selection seeds per searched method; the standard recipe leaves lr to the dataset
    assert len(selection) == 12 and {c.seed for c in selection} == {100, 101}
    assert len(standard) == 2 and {c.seed for c in standard} == {0, 1} and all(c.reinit_layers == 0 for c in standard)
    # the test seeds ran on lr 3e-5 (mean dev 0.71), not 5e-5 (best single run, mean 0.625)
    assert len(tests) == 4 and {(c.lr, c.batch_size, c.epochs) for c in tests} == {(3e-5, 16, 3)}
    assert {c.seed for c in tests} == {0, 1}
    assert "| BIOSSES | search | 3e-05 | 16 | 3 | 71.00 |" in out
    assert "| BIOSSES | stabilised+search | 3e-05 | 16 | 3 | 71.00 |" in out
    assert "| BIOSSES | 3e-05 | 16 | 3 | **71.00 ± 1.41** ← | **71.00 ± 1.41** ← |" in out
    assert "| BIOSSES | 5e-05 | 16 | 3 | 62.50 ± 45.96 | 62.50 ± 45.96 |" in out
    header = next(line for line in out.splitlines() if line.startswith("| dataset | standard"))
    assert header == "| dataset | standard | search | stabilised+search |"
    row = next(line for line in out.splitlines() if line.startswith("| BIOSSES | ") and "failed" in line)
    assert row.count("0/2 failed") == 3 and "60.50 ± 0.71" in row  # stabilised+search: the retrained model's test
    assert "| *BIOSSES, published* |  | 92.30 | 94.49 |" in out
    assert "- BIOSSES grid (search, stabilised+search): lr 1e-05/3e-05/5e-05 x batch 16 x epochs 3 = 3 points x 2 " \
           "selection seeds (100-101) on dev, then 2 test seeds (0-1) on the chosen point: 8 runs per method" in out
    stored = _by_variant(runs)
    assert {v: len(r) for v, r in stored.items()} == {"standard": 2, "search/select": 6, "stabilised+search/select": 6,
                                                      "search": 2, "stabilised+search": 2}
    grid_csv = (runs / "study-search-full-grid.csv").read_text()
    assert grid_csv.splitlines()[0].startswith("study,row,method,lr,batch_size,epochs,dev_scores")
    assert sum(line.endswith(",1") for line in grid_csv.splitlines()) == 2
    seed_csv = (runs / "study-search-full.csv").read_text().splitlines()
    assert len(seed_csv) == 1 + 6 and not any("/select" in line for line in seed_csv)


def test_stabilisation_reaches_every_grid_run_and_the_final_model_only_the_test_runs(fake, tmp_path, capsys):
    assert main(_argv(fake.model, tmp_path / "runs")) == 0
    capsys.readouterr()
    stable = [c for c in fake.trained if c.reinit_layers == 1]
    plain = [c for c in fake.trained if c.reinit_layers == 0]
    assert len(stable) == 6 + 2 and len(plain) == 2 + 6 + 2
    # selection runs read the dev score of the model before the train+dev retrain: they skip the retrain
    assert [c.final_on_train_dev for c in stable if c.seed >= FIRST_SELECTION_SEED] == [False] * 6
    assert [c.final_on_train_dev for c in stable if c.seed < FIRST_SELECTION_SEED] == [True] * 2
    assert not any(c.final_on_train_dev or c.patience for c in plain)
    assert all(c.epochs == 3 for c in stable)  # a grid point fixes its epochs: no longer training inside the grid


def test_a_second_invocation_trains_nothing_and_prints_the_same_table(fake, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(_argv(fake.model, runs)) == 0
    first = capsys.readouterr().out.split("wall time")[0]
    trained = len(fake.trained)
    assert main(_argv(fake.model, runs)) == 0
    captured = capsys.readouterr()
    assert len(fake.trained) == trained
    assert captured.out.split("wall time")[0] == first
    assert captured.err.count("already stored") == 2 + 12 + 4


def test_on_an_executor_both_stages_store_what_this_process_stores(fake, tmp_path, monkeypatch, capsys):
    import blurbkit.experiments.executor_choice as executors

    made = []

    def make_executor(*args, **kwargs):
        made.append(SyncExecutor())
        return made[-1]

    monkeypatch.setattr(executors, "make_executor", make_executor)
    assert main(_argv(fake.model, tmp_path / "here")) == 0
    here = capsys.readouterr().out.split("wall time")[0]
    assert main(_argv(fake.model, tmp_path / "pool", "--executor", "local")) == 0
    pool = capsys.readouterr().out.split("wall time")[0]
    assert pool == here
    # one executor: standard + selection, then the test seeds as soon as each search's selection is stored
    assert [len(e.submitted) for e in made] == [2 + 12 + 4] and [e.closed for e in made] == [1]
    keys = {v: sorted(r["run_key"] for r in rows) for v, rows in _by_variant(tmp_path / "here").items()}
    assert keys == {v: sorted(r["run_key"] for r in rows) for v, rows in _by_variant(tmp_path / "pool").items()}


@pytest.mark.parametrize("executor", [False, True])
def test_a_datasets_test_seeds_run_before_the_next_datasets_grid(fake, tmp_path, monkeypatch, capsys, executor):
    """Dataset by dataset: BIOSSES's test seeds start once its selection runs are stored, before
    PubMedQA's grid (in this process, and ahead of the queue on an executor)."""
    import blurbkit.experiments.executor_choice as executors

    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: SyncExecutor())
    argv = _argv(fake.model, tmp_path / "runs", *(["--executor", "local"] if executor else []))
    argv[argv.index("biosses")] = "biosses,pubmedqa"
    assert main(argv) == 0
    capsys.readouterr()
    order = [(c.dataset, "test" if c.seed < FIRST_SELECTION_SEED and c.lr is not None else "other") for c in fake.trained]
    last_biosses_test = max(i for i, item in enumerate(order) if item == ("biosses", "test"))
    first_pubmedqa = min(i for i, (dataset, _) in enumerate(order) if dataset == "pubmedqa")
    assert last_biosses_test < first_pubmedqa
    assert sum(item[1] == "test" for item in order) == 8  # 2 datasets x 2 searched methods x 2 seeds
    stored = _by_variant(tmp_path / "runs")
    assert len(stored["search"]) == len(stored["stabilised+search"]) == 4


def test_a_selection_run_another_process_stores_mid_grid_lets_the_tests_start(fake, tmp_path, capsys):
    """Another process holds one selection run and stores it while this one trains the rest: the
    search is chosen from the store as soon as that row is there, and its test seeds run here."""
    import sqlite3
    import time

    assert main(_argv(fake.model, tmp_path / "first")) == 0  # the other process's result, to copy from
    held = next(r for r in _by_variant(tmp_path / "first")["search/select"] if r["seed"] == FIRST_SELECTION_SEED)
    runs = tmp_path / "runs"
    store = ResultsStore(runs / "results.sqlite")
    with sqlite3.connect(store.path) as db:
        db.execute("INSERT INTO claims (run_key, token, pid, host, claimed_at, heartbeat) VALUES (?, 'other', ?, ?, ?, ?)",
                   (held["run_key"], os.getpid(), store.host, time.time(), time.time()))
    fake.trained.clear()
    train = sys.modules["blurbkit.train.run"].run_finetune

    def run_finetune(config):
        if len(fake.trained) == 3:  # the other process finishes its run and stores it
            with sqlite3.connect(store.path) as db:
                db.execute("ATTACH DATABASE ? AS first", (str(tmp_path / "first" / "results.sqlite"),))
                columns = ", ".join(c[1] for c in db.execute("PRAGMA table_info(runs)") if c[1] != "id")
                db.execute(f"INSERT INTO runs ({columns}) SELECT {columns} FROM first.runs WHERE run_key = ?", (held["run_key"],))
                db.execute("DELETE FROM claims WHERE run_key = ?", (held["run_key"],))
        return train(config)

    sys.modules["blurbkit.train.run"].run_finetune = run_finetune
    assert main(_argv(fake.model, runs)) == 0
    err = capsys.readouterr().err
    assert "being trained by pid" in err and "BIOSSES [search]: chose lr 3e-05" in err
    assert len(fake.trained) == 2 + 11 + 4  # the held run not trained here; both searches' test seeds were
    assert {v: len(r) for v, r in _by_variant(runs).items()} == {"standard": 2, "search/select": 6,
                                                                 "stabilised+search/select": 6, "search": 2,
                                                                 "stabilised+search": 2}


@pytest.mark.timeout(60)
def test_a_bad_selection_run_stops_the_grid_on_an_executor_without_keep_going(fake, tmp_path, monkeypatch, capsys):
    """The grid stops on bad input (no --keep-going): no test seeds are queued after the stop, and
    the driver ends instead of asking the follow-up again and again."""
    import blurbkit.experiments.executor_choice as executors

    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: SyncExecutor())
    train = sys.modules["blurbkit.train.run"].run_finetune

    def run_finetune(config):
        if config.seed == FIRST_SELECTION_SEED + 1 and config.lr == 5e-5:
            raise BlurbkitError("a bad example in the training data")
        return train(config)

    monkeypatch.setattr(sys.modules["blurbkit.train.run"], "run_finetune", run_finetune)
    assert main(_argv(fake.model, tmp_path / "runs", "--executor", "local")) == 2
    assert "a bad example in the training data" in capsys.readouterr().err
    assert not any(c.seed < FIRST_SELECTION_SEED and c.lr is not None for c in fake.trained)  # no test seeds


@pytest.mark.parametrize("executor", [False, True])
def test_failed_selection_runs_tried_again_are_waited_for_not_counted_as_errored(fake, tmp_path, monkeypatch, capsys,
                                                                                 executor):
    """A rerun after --keep-going stored the 3e-5 selection runs as failed: the choice waits for
    them to run again (3e-5 wins once they have) instead of choosing 5e-5 from the rest at once."""
    import blurbkit.experiments.executor_choice as executors

    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: SyncExecutor())
    extra = ["--executor", "local"] if executor else []
    module = sys.modules["blurbkit.train.run"]
    train = module.run_finetune

    def failing(config):
        if config.lr == 3e-5 and config.seed >= FIRST_SELECTION_SEED:
            raise BlurbkitError("a bad example in the training data")
        return train(config)

    monkeypatch.setattr(module, "run_finetune", failing)
    assert main(_argv(fake.model, tmp_path / "runs", "--keep-going", *extra)) == 1  # failed runs: exit 1
    assert "chose lr 5e-05" in capsys.readouterr().err  # from the runs that did not fail
    monkeypatch.setattr(module, "run_finetune", train)
    assert main(_argv(fake.model, tmp_path / "runs", *extra)) == 0
    chose = [line for line in capsys.readouterr().err.splitlines() if "chose" in line]
    assert len(chose) == 2 and all("chose lr 3e-05" in line for line in chose), chose


@pytest.mark.parametrize("executor", [False, True])
def test_force_chooses_from_the_new_selection_runs_not_the_stored_ones(fake, tmp_path, monkeypatch, capsys, executor):
    import blurbkit.experiments.executor_choice as executors

    monkeypatch.setattr(executors, "make_executor", lambda *args, **kwargs: SyncExecutor())
    extra = ["--executor", "local"] if executor else []
    assert main(_argv(fake.model, tmp_path / "runs", *extra)) == 0
    capsys.readouterr()
    monkeypatch.setitem(DEV, 5e-5, (0.95, 0.90))  # the retrained grid has another best point
    fake.trained.clear()
    assert main(_argv(fake.model, tmp_path / "runs", "--force", *extra)) == 0
    chose = [line for line in capsys.readouterr().err.splitlines() if "chose" in line]
    assert len(chose) == 2 and all("chose lr 5e-05" in line for line in chose), chose
    tests = [c for c in fake.trained if c.seed < FIRST_SELECTION_SEED and c.lr is not None]
    assert len(tests) == 4 and {c.lr for c in tests} == {5e-5}  # no test seeds on the old point


def test_no_choice_until_every_selection_run_is_stored():
    study = get_stability_study("search")
    searches = plan_searches(study, ["biosses"], study.variants[1:2], 2, lambda d, s: FinetuneConfig(d, seed=s),
                             {"lr": (1e-5, 3e-5), "batch_size": (16,), "epochs": (3,), "selection_seeds": 2})
    cells = searches[0].selection()
    rows = {f"k{i}": {"status": "ok", "dev_score": 0.1 * i} for i in range(len(cells))}
    keys = {id(c): f"k{i}" for i, c in enumerate(cells)}
    by_config = {(c.config.lr, c.config.seed): keys[id(c)] for c in cells}

    def key_of(cell):
        return by_config[(cell.config.lr, cell.config.seed)]

    choice = choose_point(searches[0], rows, key_of)
    # cells are seed-major (every point's seed 0 first): 3e-5 holds k1 and k3
    assert choice.best == ({"lr": 3e-5, "batch_size": 16, "epochs": 3}, pytest.approx(0.2))
    rows.pop("k0")
    choice = choose_point(searches[0], rows, key_of)
    assert choice.best is None and "1 of 4 selection runs not stored yet" in choice.why_none()
    rows["k0"] = {"status": "failed", "dev_score": None}
    choice = choose_point(searches[0], rows, key_of)
    assert choice.best[0]["lr"] == 3e-5 and choice.errored == {'{"batch_size": 16, "epochs": 3, "lr": 1e-05}': 1}


@pytest.mark.parametrize(("extra", "message"), [
    (["--grid", "lr=1e-5,fast"], "--grid lr: 'fast' is not a number"),
    (["--grid", "depth=3"], "--grid 'depth=3': expected NAME=V1,V2"),
    (["--lr", "3e-5"], "--lr: study search searches these; set them with --grid"),
    (["--variants", "standard"], "--grid: none of the methods selected with --variants searches a grid"),
    (["--study", "stability"], "--grid: only with --study search"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_stored(fake, tmp_path, capsys, extra, message):
    runs = tmp_path / "runs"
    assert main(_argv(fake.model, runs, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blurbkit: error: ") and message in err[0], err
    assert not (runs / "results.sqlite").exists() and not fake.trained


def test_the_report_page_leaves_the_selection_runs_out():
    from blurbkit.experiments.site.studies import StabilityPage

    seen = ["standard", "search/select", "search", "stabilised+search/select", "stabilised+search", "stabilised"]
    assert StabilityPage().variant_order("search", seen) == ["standard", "search", "stabilised+search", "stabilised"]


def test_quick_grids_are_small_and_follow_the_budget():
    from blurbkit.experiments.benchmark import budget_profile
    from blurbkit.experiments.protocol import grid_for

    for dataset in ("biosses", "pubmedqa", "ddi", "bioasq", "hoc"):
        grid, budget = grid_for(dataset, protocol="quick"), budget_profile("quick", dataset)
        assert len(grid.points()) == 2 and grid.selection_seeds == 2
        assert grid.batch_size == (budget["batch_size"],) and grid.epochs == (budget["epochs"],)
    with pytest.raises(BlurbkitError, match="unknown protocol"):
        grid_for("biosses", protocol="slow")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", hidden=32, layers=2)


def test_a_tiny_bert_runs_the_study_end_to_end(tiny, shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["ablate", "--study", "search", "--datasets", "biosses", "--seeds", "1", "--variants", "search,stabilised+search",
            "--grid", "lr=1e-3,1e-4;bs=8;epochs=1;select=1", "--data", str(shared_data), "--model", str(tiny),
            "--runs-dir", str(runs), "--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "16",
            "--max-length", "32", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| dataset | search | stabilised+search |"
    stored = _by_variant(runs)
    assert {v: len(r) for v, r in stored.items()} == {"search/select": 2, "stabilised+search/select": 2,
                                                      "search": 1, "stabilised+search": 1}
    final = json.loads(stored["stabilised+search"][0]["hyperparameters"])
    assert final["final_on_train_dev"] and final["reinit_layers"] == 1 and final["epochs"] == 1
    assert any("retrained on train+dev" in note for note in json.loads(stored["stabilised+search"][0]["notes"]))
    assert (runs / "study-search-custom-train16-dev8-test16-grid.csv").is_file()


def test_quick_runs_the_small_grid_on_the_budgets_subsamples(fake, tmp_path, capsys):
    argv = ["ablate", "--study", "search", "--quick", "--datasets", "pubmedqa", "--seeds", "1", "--variants", "search",
            "--model", str(fake.model), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "- PubMedQA grid (search): lr 3e-05/5e-05 x batch 16 x epochs 2 = 2 points x 2 selection seeds" in out
    assert len(fake.trained) == 2 * 2 + 1
    assert {(c.max_train_examples, c.max_eval_examples, c.max_test_examples) for c in fake.trained} == {(300, 50, 500)}
    assert "BUDGET RUN (quick)" in out
    # --grid shrinks the quick grid further
    assert main([*argv, "--grid", "lr=5e-5;select=1"]) == 0
    assert "lr 5e-05 x batch 16 x epochs 2 = 1 point x 1 selection seed " in capsys.readouterr().out


def test_plan_costs_what_is_left_and_starts_nothing(fake, tmp_path, monkeypatch, capsys):
    """`ablate --plan`: every run not stored, costed from the measured (here: given) throughput; the
    searched methods' test runs, before a choice, at the grid's mean epochs; nothing trained or stored."""
    import blurbkit.experiments.plan as plan
    from blurbkit.experiments.cost import Rates
    from blurbkit.tasks.registry import get_dataset

    monkeypatch.setattr(plan, "calibrate", lambda config, threads: Rates(10.0, 30.0, 1.0, "given"))
    monkeypatch.setattr(plan, "split_sizes", lambda config: {"train": 100, "dev": 10, "test": 20})
    runs = tmp_path / "runs"

    def seconds(epochs):  # overhead + training + dev after every epoch and once more + test
        return 1 + 100 * epochs / 10 + (10 * (epochs + 1) + 20) / 30

    def rows(out):
        return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
                for line in out.splitlines() if line.startswith("| BIOSSES")}

    assert main([*_argv(fake.model, runs), "--plan", "--workers", "3"]) == 0
    out = capsys.readouterr().out
    assert fake.trained == [] and not (runs / "results.sqlite").exists()
    table = rows(out)
    standard = seconds(get_dataset("biosses").recipe.epochs)
    assert table["BIOSSES"][:4] == ["2", "0", "2", f"{standard:.0f}"]
    # 3 points x 2 selection seeds and 2 test seeds on the point not chosen yet, all at 3 epochs
    assert table["BIOSSES (search)"][:4] == table["BIOSSES (stabilised+search)"][:4] == ["8", "0", "8", f"{seconds(3):.0f}"]
    assert f"CPU-hours: {(2 * standard + 16 * seconds(3)) / 3600:.2f}" in out and "wall time on 3 runs at once" in out
    assert main(_argv(fake.model, runs)) == 0  # the study itself
    capsys.readouterr()
    assert main([*_argv(fake.model, runs), "--plan"]) == 0
    out = capsys.readouterr().out
    # the test runs are keyed on the point chosen from the stored selection runs: all stored
    assert all(cells[1:3] == [cells[0], "0"] for cells in rows(out).values()) and "18 in all, 0 to run" in out
