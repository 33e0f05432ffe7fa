"""Fine-tuning stabilisation (SPEC §4): Adam without bias correction, early stopping, the train+dev
final model, the layer options against their definitions, the failed-run measure and the
stability studies, each on hand-made cases or a tiny random BERT."""

from __future__ import annotations

import json
import math

import pytest
import torch

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.models.loading import load_encoder
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.runtime.optim import UncorrectedAdamW, adamw, parameter_groups
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.engine import build_optimizer
from blurbkit.train.stabilise import freeze_lower_half, reinit_top_layers

B1, B2, EPS = 0.9, 0.999, 1e-8


# ---- Adam bias correction ------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_uncorrected_adam_steps_are_the_hand_computed_ones(fused):
    start = torch.tensor([1.0, -2.0, 0.5, 0.0])
    grads = [torch.tensor([0.3, -0.1, 2.0, 1e-3]), torch.tensor([-0.2, 0.4, 1.0, 0.0])]
    lr, wd = 0.1, 0.01
    param = torch.nn.Parameter(start.clone())
    optimizer = adamw([{"params": [param], "lr": lr, "weight_decay": wd}], lr, fused=fused, bias_correction=False)
    assert isinstance(optimizer, UncorrectedAdamW)
    expected, m, v = start.double(), torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    for g in grads:
        param.grad = g.clone()
        optimizer.step()
        m = B1 * m + (1 - B1) * g.double()
        v = B2 * v + (1 - B2) * g.double() ** 2
        expected = expected - lr * (m / (v.sqrt() + EPS) + wd * expected)  # BERT's AdamWeightDecay, no correction
        torch.testing.assert_close(param.detach().double(), expected, rtol=1e-6, atol=1e-7)
    # The group's own values are what the schedule and checkpoints see.
    group = optimizer.param_groups[0]
    assert (group["lr"], group["eps"], group["weight_decay"]) == (lr, EPS, wd)


def test_corrected_adam_moves_the_first_step_by_lr_and_uncorrected_by_more():
    moved = {}
    for correction in (True, False):
        param = torch.nn.Parameter(torch.tensor([1.0]))
        optimizer = adamw([{"params": [param], "lr": 0.01, "weight_decay": 0.0}], 0.01, bias_correction=correction)
        param.grad = torch.tensor([0.5])
        optimizer.step()
        moved[correction] = 1.0 - param.item()
    assert moved[True] == pytest.approx(0.01, rel=1e-5)
    # Step 1 as the definition says: lr * m1 / (sqrt(v1) + eps) with m1 = (1-b1) g, v1 = (1-b2) g^2: 3.16 lr
    m1, v1 = (1 - B1) * 0.5, (1 - B2) * 0.5**2
    assert moved[False] == pytest.approx(0.01 * m1 / (math.sqrt(v1) + EPS), rel=1e-5)
    assert moved[False] == pytest.approx(0.01 * 0.1 / math.sqrt(0.001), rel=1e-5)


def test_uncorrected_adam_resumes_its_step_count_from_the_state():
    def run(split: bool) -> torch.Tensor:
        param = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        optimizer = adamw([{"params": [param], "lr": 0.1, "weight_decay": 0.0}], 0.1, bias_correction=False)
        for i in range(4):
            if split and i == 2:  # as a checkpoint restore does
                state = optimizer.state_dict()
                optimizer = adamw([{"params": [param], "lr": 0.1, "weight_decay": 0.0}], 0.1, bias_correction=False)
                optimizer.load_state_dict(state)
            param.grad = torch.tensor([0.1 * (i + 1), -0.2])
            optimizer.step()
        return param.detach().clone()

    assert torch.equal(run(False), run(True))


# ---- layer options against SPEC §4 ---------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", hidden=64, layers=4)


class Wrapped(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, ids):
        return self.head(self.encoder(input_ids=ids).last_hidden_state[:, 0]).sum()


def test_frozen_parameters_do_not_move_in_a_step_and_the_upper_half_does(model_dir):
    model = Wrapped(load_encoder(model_dir))
    freeze_lower_half(model.encoder)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(model, lr=1e-2, weight_decay=0.01, layer_decay=0.8)
    model(torch.tensor([[101, 2000, 2003, 102]])).backward()
    optimizer.step()
    after = dict(model.named_parameters())
    frozen = [n for n in before if n.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.", "encoder.encoder.layer.1."))]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert not torch.equal(before["encoder.encoder.layer.3.attention.self.query.weight"],
                           after["encoder.encoder.layer.3.attention.self.query.weight"])
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_layer_decay_reaches_the_embeddings_at_depth_L_and_one_is_no_decay(model_dir):
    model = Wrapped(load_encoder(model_dir))
    named = dict(model.named_parameters())
    lr_of = {id(p): g["lr"] for g in parameter_groups(model.named_parameters(), 1.0, 0.0, 0.8, 4) for p in g["params"]}
    assert lr_of[id(named["encoder.embeddings.position_embeddings.weight"])] == pytest.approx(0.8**4)
    assert lr_of[id(named["encoder.encoder.layer.1.output.dense.weight"])] == pytest.approx(0.8**2)
    flat = parameter_groups(model.named_parameters(), 1.0, 0.0, 1.0, 4)
    assert {g["lr"] for g in flat} == {1.0}


def test_reinit_draws_the_top_blocks_with_berts_initialiser(model_dir):
    encoder = load_encoder(model_dir)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.config.initializer_range = 0.1  # 5x the checkpoint's 0.02: the new std shows where weights came from
    torch.manual_seed(0)
    reinit_top_layers(encoder, 2)
    params = dict(encoder.named_parameters())
    for name, value in params.items():
        if not name.startswith(("encoder.layer.2.", "encoder.layer.3.")):
            assert torch.equal(value, before[name]), name
            continue
        if "LayerNorm.weight" in name:
            assert torch.equal(value, torch.ones_like(value)), name
        elif name.endswith("bias"):
            assert torch.equal(value, torch.zeros_like(value)), name
        else:
            assert not torch.equal(value, before[name]), name
            assert value.mean().abs().item() < 0.01 and value.std().item() == pytest.approx(0.1, rel=0.1), name
    lower = params["encoder.layer.1.intermediate.dense.weight"]
    assert lower.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("options, message", [
    ({"layer_decay": 0.0}, "--layer-decay must be in (0, 1] (got 0.0)"),
    ({"layer_decay": 1.5}, "--layer-decay must be in (0, 1] (got 1.5)"),
    ({"patience": 0}, "--patience must be at least 1 epoch (got 0)"),
    ({"min_epochs": 3}, "--min-epochs is the first epoch early stopping may end a run: it needs --patience"),
    ({"min_epochs": 0, "patience": 2}, "--min-epochs is the first epoch early stopping may end a run"),
    ({"reinit_layers": -1}, "--reinit-layers must be 0 or more"),
    ({"final_steps": True}, "--final-steps sets how long the train.dev model trains: it needs --final-on-train-dev"),
])
def test_bad_values_are_refused_when_the_config_is_made(options, message):
    with pytest.raises(BlurbkitError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        FinetuneConfig(dataset="gad", **options)


@pytest.mark.parametrize("flags, message", [
    (["--reinit-layers", "4"], "cannot re-initialise 4 layers: the encoder has 4 (at least one must remain)"),
    (["--drop-layers", "5"], "cannot drop 5 layers: the encoder has 4"),
    (["--drop-layers", "2", "--reinit-layers", "2"], "cannot re-initialise 2 layers: the encoder has 2"),
    (["--layer-decay", "1.2"], "--layer-decay must be in (0, 1] (got 1.2)"),
    (["--patience", "0"], "--patience must be at least 1 epoch"),
    (["--min-epochs", "2"], "--min-epochs is the first epoch early stopping may end a run: it needs --patience"),
    (["--patience", "2", "--min-epochs", "3"], "--min-epochs 3 is more than gad's 1 epoch"),
])
def test_bad_layer_options_are_one_line_before_training(flags, message, model_dir, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--dataset", "gad", "--data", str(shared_data), "--model", str(model_dir), "--out", str(out),
                 "--epochs", "1", "--max-train-examples", "8", "--no-progress", *flags])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("blurbkit: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())


def test_a_grid_with_min_epochs_above_one_datasets_epochs_stops_before_any_run(model_dir, shared_data, tmp_path, capsys):
    """BIOSSES (30 recipe epochs) would run first; GAD (10) cannot take --min-epochs 15: nothing trains."""
    runs = tmp_path / "runs"
    code = main(["benchmark", "--datasets", "biosses,gad", "--seeds", "1", "--data", str(shared_data), "--model",
                 str(model_dir), "--runs-dir", str(runs), "--patience", "2", "--min-epochs", "15",
                 "--max-train-examples", "8", "--no-progress"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("blurbkit: error:")]
    assert code == 2 and len(errors) == 1 and "--min-epochs 15 is more than gad's 10 epochs" in errors[0], err
    assert not list(runs.rglob("metrics.json"))


# ---- early stopping and the train+dev final model -----------------------------------------------

TINY_RUN = {"max_train_examples": 24, "max_eval_examples": 8, "max_test_examples": 16, "batch_size": 8,
            "max_length": 32, "lr": 1e-3, "progress": False, "save_model": False}


def script_dev_scores(monkeypatch, scores: list[float]) -> list[float]:
    """Each dev scoring returns the next of `scores` (the list, consumed as the run goes)."""
    from blurbkit.train import engine as engine_module

    real_score = engine_module.Engine.score

    def score(self, data, split):
        result = real_score(self, data, split)
        if split == "dev" and scores:
            result["score"] = scores.pop(0)
        return result

    monkeypatch.setattr(engine_module.Engine, "score", score)
    return scores


def test_patience_stops_when_dev_has_not_improved_and_keeps_the_best_epoch(model_dir, shared_data, monkeypatch):
    from blurbkit.train.api import finetune

    scripted = script_dev_scores(monkeypatch, [0.50, 0.60, 0.55, 0.58, 0.90, 0.95])  # best at 2; patience 2 ends it at 4
    metrics = finetune("gad", data=str(shared_data), model=str(model_dir), epochs=6, patience=2, **TINY_RUN)
    assert metrics["epochs_run"] == 4 and metrics["best_epoch"] == 2
    assert scripted == [0.95]  # epochs 1-4 and the best epoch's final dev score; epoch 5 never ran


def test_last_epoch_scores_the_last_epochs_weights_not_the_best_dev_epochs(model_dir, shared_data, monkeypatch):
    from blurbkit.train import engine as engine_module
    from blurbkit.train.api import finetune

    tests = []
    real_score = engine_module.Engine.score

    def score(self, data, split):  # which weights test scored: their sum
        if split == "test":
            tests.append(sum(float(p.detach().double().sum()) for p in self.model.parameters()))
        return real_score(self, data, split)

    monkeypatch.setattr(engine_module.Engine, "score", score)
    runs = {}
    for last in (False, True):
        script_dev_scores(monkeypatch, [0.90, 0.10, 0.20, 0.5])  # dev best at epoch 1 of 3
        runs[last] = finetune("gad", data=str(shared_data), model=str(model_dir), epochs=3, last_epoch=last, **TINY_RUN)
    assert runs[False]["best_epoch"] == runs[True]["best_epoch"] == 1
    script_dev_scores(monkeypatch, [0.10, 0.20, 0.90, 0.5])  # best at the last epoch: the same weights as last_epoch
    finetune("gad", data=str(shared_data), model=str(model_dir), epochs=3, **TINY_RUN)
    best, last, at_three = tests
    assert last == at_three and best != last
    assert any("scored the last epoch's weights (--last-epoch); dev was best at epoch 1" in n for n in runs[True]["notes"])
    with pytest.raises(BlurbkitError, match="--last-epoch scores the last epoch's weights; --patience"):
        FinetuneConfig(dataset="gad", last_epoch=True, patience=2)


def test_early_stopping_never_ends_a_run_before_min_epochs(model_dir, shared_data, monkeypatch):
    """The dev scores that stopped the run above at epoch 4 (best 2, patience 2) do not stop it before
    epoch 5 with min_epochs 5; with no improvement by then (best still epoch 2) it stops after epoch 5."""
    from blurbkit.train.api import finetune

    script_dev_scores(monkeypatch, [0.50, 0.60, 0.55, 0.58, 0.59, 0.57, 0.95])
    metrics = finetune("gad", data=str(shared_data), model=str(model_dir), epochs=8, patience=2, min_epochs=5, **TINY_RUN)
    # best stays epoch 2; not stopped at 4 (min 5); at epoch 5, 3 epochs without improvement: stop
    assert metrics["epochs_run"] == 5 and metrics["best_epoch"] == 2


def test_early_stopping_and_train_dev_need_a_dev_split(model_dir, shared_data, monkeypatch):
    from blurbkit.train import splits as splits_module
    from blurbkit.train.api import finetune

    real = splits_module.load_split
    monkeypatch.setattr(splits_module, "load_split", lambda name, split, *a: [] if split == "dev" else real(name, split, *a))
    for option, flag in (({"patience": 2}, "--patience"), ({"final_on_train_dev": True}, "--final-on-train-dev")):
        with pytest.raises(BlurbkitError, match=f"{flag} chooses the epoch on dev, and dataset gad has no dev split"):
            finetune("gad", data=str(shared_data), model=str(model_dir), epochs=1, **option, **TINY_RUN)


def test_final_model_is_retrained_from_the_pretrained_encoder_on_train_and_dev(model_dir, shared_data, monkeypatch, tmp_path):
    from blurbkit.train import engine as engine_module
    from blurbkit.train.api import finetune

    calls = []
    real_train = engine_module.Engine.train

    def train(self, train_data, dev, **kwargs):
        first = next(p for n, p in self.model.named_parameters() if "layer.0.attention.self.query.weight" in n)
        calls.append({"examples": len(train_data.examples), "dev": dev is not None, "epochs": self.hyper.epochs,
                      "start": first.detach().clone()})
        return real_train(self, train_data, dev, **kwargs)

    monkeypatch.setattr(engine_module.Engine, "train", train)
    out = tmp_path / "run"
    metrics = finetune("gad", out=out, data=str(shared_data), model=str(model_dir), epochs=3, final_on_train_dev=True,
                       reinit_layers=1, **TINY_RUN)
    assert len(calls) == 2 and calls[0]["dev"] and not calls[1]["dev"]
    assert calls[0]["examples"] == 24 and calls[1]["examples"] == 24 + 8
    assert calls[1]["epochs"] == metrics["best_epoch"] == metrics["final_on_train_dev"]["epochs"]
    assert torch.equal(calls[0]["start"], calls[1]["start"])  # the same fresh start, not the fine-tuned weights
    assert "test_before" in metrics["final_on_train_dev"] and "trivial_score" in metrics["test"]
    assert any("retrained on train+dev (24 + 8 records)" in note for note in metrics["notes"])
    assert sorted(p.name for p in out.iterdir()) == ["epochs.jsonl", "metrics.json", "predictions", "run.json"]


def test_final_steps_retrains_for_the_chosen_models_steps_not_its_epochs(model_dir, shared_data, monkeypatch):
    """24 train records at batch 8: 3 steps an epoch, so the chosen model (all 3 epochs, --last-epoch)
    took 9 steps. Train+dev (32 records, 4 steps an epoch) trains 9 steps with --final-steps: 4 + 4 + 1,
    its schedule over those 9 (the learning rate down to 0 at the last); 12 without."""
    from blurbkit.train.api import finetune

    lrs: list[float] = []
    real_step = torch.optim.lr_scheduler.LambdaLR.step

    def step(self, *args, **kwargs):
        real_step(self, *args, **kwargs)
        lrs.append(self.get_last_lr()[0])

    monkeypatch.setattr(torch.optim.lr_scheduler.LambdaLR, "step", step)
    common = dict(data=str(shared_data), model=str(model_dir), epochs=3, last_epoch=True, final_on_train_dev=True, **TINY_RUN)
    by_steps = finetune("gad", final_steps=True, **common)
    assert by_steps["final_on_train_dev"]["steps"] == 9 and by_steps["final_on_train_dev"]["epochs"] == 3
    assert lrs[-1] == 0.0 and lrs[-2] > 0.0  # the second schedule ends on the 9th step, not inside the 12
    assert any("for 9 optimizer steps (--final-steps: 3 epochs of train" in note for note in by_steps["notes"])
    by_epochs = finetune("gad", **common)
    assert by_epochs["final_on_train_dev"]["steps"] == 12


def test_final_steps_counts_the_windows_a_long_record_becomes(model_dir, shared_data):
    """NCBI-disease sentences at 16 subwords are several windows each: the chosen model's steps are
    over its windows (what it trained on), not its records."""
    from blurbkit.train.api import finetune

    metrics = finetune("ncbi_disease", data=str(shared_data), model=str(model_dir), epochs=2, last_epoch=True,
                       final_on_train_dev=True, final_steps=True, **{**TINY_RUN, "max_length": 16})
    windows = metrics["train_windows"]
    assert windows > 24  # the 24 records became more windows
    assert metrics["final_on_train_dev"]["steps"] == 2 * math.ceil(windows / 8)


# ---- the failed-run measure ----------------------------------------------------------------------

def test_trivial_predictors_and_failed_runs_per_metric():
    from blurbkit.scoring import score_predictions

    biosses = get_dataset("biosses")
    pairs = [{"id": str(i), "text_a": "a", "text_b": "b", "score": float(i)} for i in range(4)]
    trivial = score_predictions(biosses, pairs, biosses.task.trivial_predictions(biosses, pairs, pairs))
    assert trivial["score"] == 0.0 and trivial["undefined"]
    assert biosses.task.run_failed({"score": 0.0, "undefined": True, "trivial_score": 0.0})
    assert biosses.task.run_failed({"score": -0.2, "trivial_score": 0.0})
    assert not biosses.task.run_failed({"score": 0.05, "trivial_score": 0.0})
    assert biosses.task.run_failed({"score": float("nan")})

    qa = get_dataset("bioasq")
    train = [{"id": f"t{i}", "question": "q", "context": "c", "label": label} for i, label in enumerate(["yes", "yes", "no"])]
    test = [{"id": f"q{i}", "question": "q", "context": "c", "label": label} for i, label in enumerate(["yes", "no", "no", "yes"])]
    guess = qa.task.trivial_predictions(qa, train, test)
    assert set(guess.values()) == {"yes"}
    majority = score_predictions(qa, test, guess)["score"]
    assert majority == 0.5
    assert qa.task.run_failed({"score": 0.5, "trivial_score": majority})
    assert not qa.task.run_failed({"score": 0.75, "trivial_score": majority})

    ncbi = get_dataset("ncbi_disease")
    sentences = [{"id": "s1", "doc_id": None, "tokens": ["a", "b"], "tags": ["B-Disease", "O"]}]
    assert ncbi.task.trivial_predictions(ncbi, sentences, sentences) == [["O", "O"]]
    assert score_predictions(ncbi, sentences, [["O", "O"]])["score"] == 0.0
    assert ncbi.task.run_failed({"score": 0.0, "trivial_score": 0.0})

    hoc = get_dataset("hoc")
    docs = [{"id": "d1", "text": "x", "labels": [hoc.labels[0]]}, {"id": "d2", "text": "y", "labels": []}]
    assert hoc.task.trivial_predictions(hoc, docs, docs) == {"d1": [], "d2": []}


def test_a_cell_reads_mean_over_all_seeds_mean_over_non_failed_and_the_counts():
    """Seeds 0-3 of one cell: Pearson 30, -5 (failed: below the constant predictor's 0), 20 and one
    run that errored (counted apart, in no mean)."""
    from blurbkit.experiments.stability import Cell, collect, get_stability_study, stability_table

    study = get_stability_study("stability")
    standard = [v for v in study.variants if v.name == "standard"]
    cells = [Cell("BIOSSES", "standard", FinetuneConfig("biosses", seed=seed)) for seed in range(4)]
    rows = [{"run_key": f"k{seed}", "status": "ok", "test_score": score, "seed": seed, "wall_seconds": 10.0 + seed,
             "test_metrics": json.dumps({"score": score, "trivial_score": 0.0})}
            for seed, score in enumerate((0.30, -0.05, 0.20))]
    rows.append({"run_key": "k3", "status": "error", "test_score": None, "seed": 3, "wall_seconds": None, "test_metrics": None})
    results = collect(cells, rows, lambda cell: f"k{cell.config.seed}")
    entry = results[("BIOSSES", "standard")]
    assert entry["failed"] == [False, True, False] and entry["errored"] == 1
    table = stability_table(study, cells, results, standard, "full")
    assert "| BIOSSES | 15.00 ± 18.03 · 25.00 · 1/3 failed, 1 errored |" in table, table


# ---- studies ------------------------------------------------------------------------------------

def _study_options(model_dir, shared_data, runs):
    return ["--data", str(shared_data), "--model", str(model_dir), "--runs-dir", str(runs), "--epochs", "1",
            "--batch-size", "8", "--max-eval-examples", "8", "--max-test-examples", "16", "--max-length", "32",
            "--no-progress"]


def test_optimization_study_table_report_and_resume(model_dir, shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["ablate", "--study", "optimization", "--seeds", "2", "--max-train-examples", "16",
            *_study_options(model_dir, shared_data, runs)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "| dataset | standard | no-bias-correction | longer | longer+no-bias-correction |"
    row = next(line for line in lines if line.startswith("| BIOSSES |"))
    assert row.count("/2 failed") == 4 and row.count("±") == 4
    assert "| *BIOSSES, published* | 92.64 |  | 93.46 | 91.75 |" in captured.out
    assert "- BIOSSES: train 16 sampled, epochs 1 (longer 3, longer+no-bias-correction 3), batch 8" in captured.out
    assert "- BIOSSES: " in captured.out and "longer = up to 3x the budget's epochs" in captured.out and "never before" in captured.out
    report = runs / "study-optimization-custom-train16-dev8-test16"
    assert report.with_suffix(".md").read_text().startswith("| dataset |")
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    csv_lines = report.with_suffix(".csv").read_text().splitlines()
    assert csv_lines[0] == "study,row,method,seed,test_score,failed,wall_seconds" and len(csv_lines) == 1 + 8
    from blurbkit.store.results import ResultsStore

    stored = ResultsStore(runs / "results.sqlite").rows(study="optimization")
    longer = [json.loads(r["hyperparameters"]) for r in stored if r["variant"] == "longer"]
    assert longer[0]["epochs"] == 3 and longer[0]["patience"] == 5 and "bias_correction" not in longer[0]
    assert longer[0]["min_epochs"] == 1  # never shorter than the budget's own epochs
    assert all(json.loads(r["test_metrics"])["trivial_score"] == 0.0 for r in stored)
    assert main(argv) == 0
    assert capsys.readouterr().err.count("already stored") == 8


def test_pruning_and_low_resource_studies(model_dir, shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    options = _study_options(model_dir, shared_data, runs)
    assert main(["ablate", "--study", "pruning", "--datasets", "biosses", "--variants", "drop0,drop2", "--seeds", "1",
                 "--max-train-examples", "16", *options]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| BIOSSES |"))
    drop0, drop2 = (cell.strip() for cell in row.strip("|").split("|")[1:])
    assert drop0.endswith("s/run") and "M ·" in drop0 and "M ·" in drop2
    assert "| *BIOSSES, published* | 92.30 | 92.80 |" in out
    assert main(["ablate", "--study", "low-resource", "--datasets", "ddi", "--variants", "standard", "--seeds", "1",
                 *options]) == 0
    out = capsys.readouterr().out
    assert [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| DDI ")] == ["DDI 100", "DDI 500", "DDI 1000"]
    assert "| *DDI 500, published* | 34.36 (5.46) |" in out
    assert "- DDI 1000: train 1000 sampled" in out
    assert main(["ablate", "--study", "low-resource", "--max-train-examples", "50", *options]) == 2
    assert "leave out --max-train-examples" in capsys.readouterr().err
    assert main(["ablate", "--study", "stability", "--layer-decay", "0.9", *options]) == 2
    assert "--layer-decay is what study stability varies" in capsys.readouterr().err


def test_low_resource_sizes_replace_a_budgets_training_size_and_refuse_the_users():
    from blurbkit.experiments.stability import build_cells, check_train_size, get_stability_study

    study = get_stability_study("low-resource")
    check_train_size(study, None)
    with pytest.raises(BlurbkitError, match="leave out --max-train-examples"):
        check_train_size(study, 50)
    budgeted = lambda dataset, seed: FinetuneConfig(dataset=dataset, seed=seed, max_train_examples=2000, epochs=2)  # noqa: E731
    cells = build_cells(study, ["ddi"], study.variants[:2], 1, budgeted)
    assert [(c.row, c.variant, c.config.max_train_examples) for c in cells] == [
        ("DDI 100", "standard", 100), ("DDI 100", "freeze", 100), ("DDI 500", "standard", 500),
        ("DDI 500", "freeze", 500), ("DDI 1000", "standard", 1000), ("DDI 1000", "freeze", 1000)]
    assert all(c.config.freeze_lower_half == (c.variant == "freeze") for c in cells)


def test_studies_default_to_each_datasets_protocol_seeds_and_seeds_overrides_them():
    # SPEC §2: 10 seeds for BIOSSES, BioASQ and PubMedQA, 5 for the rest, in every table the papers report.
    from blurbkit.experiments.search_study import plan_searches
    from blurbkit.experiments.stability import build_cells, get_stability_study

    make = lambda dataset, seed: FinetuneConfig(dataset=dataset, seed=seed)  # noqa: E731
    study = get_stability_study("pruning")
    cells = build_cells(study, ["biosses", "chemprot"], study.variants[:1], None, make)
    assert {d: len([c for c in cells if c.config.dataset == d]) for d in ("biosses", "chemprot")} == {
        "biosses": 10, "chemprot": 5}
    assert len(build_cells(study, ["biosses"], study.variants[:1], 2, make)) == 2
    search = get_stability_study("search")
    grid = {"lr": (1e-5,), "batch_size": (16,), "epochs": (3,), "selection_seeds": 1}
    plans = plan_searches(search, ["pubmedqa", "ddi"], search.variants[1:2], None, make, grid)
    assert [p.protocol.test_seeds for p in plans] == [10, 5]
    assert [p.protocol.test_seeds for p in plan_searches(search, ["ddi"], search.variants[1:2], 3, make, grid)] == [3]
