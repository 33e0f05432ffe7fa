"""The fine-tuning engine end to end on every task type, with a tiny random BERT (seconds each)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.train.api import finetune


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


CASES = [
    # dataset, extra options
    ("bc5chem", {}),
    ("ebm_pico", {"pico_train_from_dev": 20}),
    ("chemprot", {}),
    ("gad", {}),
    ("biosses", {}),
    ("hoc", {"max_length": 128}),
    ("pubmedqa", {"max_length": 128}),
    ("bioasq", {"max_length": 128}),
]


# Small test sets, one per task type not rescored elsewhere: scored in full, so that `blurbkit
# evaluate` (which wants every gold id) can rescore the saved predictions independently of the run.
FULL_TEST = {"ebm_pico", "gad", "biosses", "hoc", "pubmedqa", "bioasq"}


@pytest.mark.parametrize(("dataset", "extra"), CASES, ids=[c[0] for c in CASES])
def test_each_task_type_trains_and_scores(dataset, extra, tiny_model, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    metrics = finetune(
        dataset,
        out=out,
        data=str(shared_data),
        model=str(tiny_model),
        epochs=1,
        batch_size=8,
        max_train_examples=32,
        max_eval_examples=16,
        max_test_examples=None if dataset in FULL_TEST else 40,
        progress=False,
        **extra,
    )
    assert metrics["dataset"] == dataset
    score = metrics["test"]["score"]
    assert isinstance(score, float) and math.isfinite(score)
    assert (-1.0 if dataset == "biosses" else 0.0) <= score <= 1.0  # a fraction (Pearson: -1..1)
    assert (out / "metrics.json").is_file() and (out / "run.json").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["data_sha256"]["train"] and run["versions"]["torch"].startswith("2.13")
    test_noted = any("BUDGET RUN: test scored on a seeded subsample" in note for note in metrics["notes"])
    assert test_noted == (dataset not in FULL_TEST)
    if dataset in FULL_TEST:  # the saved predictions rescore to the run's own test score
        [predictions] = (out / "predictions").glob("test.*")
        capsys.readouterr()
        assert main(["evaluate", "--dataset", dataset, "--data", str(shared_data), "--predictions", str(predictions)]) == 0
        assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(score, abs=1e-12)
    assert any("BUDGET RUN: trained on a seeded subsample of 32 of" in note for note in metrics["notes"])
    # the saved encoder is a plain Hugging Face model directory
    from transformers import AutoModel

    AutoModel.from_pretrained(out / "model")
    # ... and training moved it
    from safetensors.torch import load_file

    before, after = load_file(str(tiny_model / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))

    def query(weights):
        (name,) = [n for n in weights if n.endswith("layer.0.attention.self.query.weight")]
        return weights[name]

    assert not torch.equal(query(before), query(after))


def test_saved_predictions_rescore_to_the_runs_own_metrics(tiny_model, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    metrics = finetune("ncbi_disease", out=out, data=str(shared_data), model=str(tiny_model), epochs=1,
                       batch_size=16, max_train_examples=64, max_eval_examples=32, progress=False, save_model=False)
    code = main(["evaluate", "--dataset", "ncbi_disease", "--split", "test", "--data", str(shared_data),
                 "--predictions", str(out / "predictions" / "test.tsv")])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["score"] == pytest.approx(metrics["test"]["score"], abs=1e-12)
    assert printed["precision"] == pytest.approx(metrics["test"]["precision"], abs=1e-12)


def test_run_directory_of_another_run_is_refused(tiny_model, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}")
    code = main(["finetune", "--dataset", "gad", "--data", str(shared_data), "--model", str(tiny_model),
                 "--out", str(out), "--epochs", "1", "--max-train-examples", "8", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds another run" in err and "Traceback" not in err
    assert (out / "run.json").read_text() == "{}"
    # --overwrite replaces a run, not a user's folder (nor `..`): one line, nothing deleted, nothing trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for target in (mine, mine / ".."):
        code = main(["finetune", "--dataset", "gad", "--data", str(shared_data), "--model", str(tiny_model),
                     "--out", str(target), "--epochs", "1", "--max-train-examples", "8", "--no-progress", "--overwrite"])
        assert code == 2
        assert "holds other files, not a blurbkit run" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["mine", "run"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nosuch"], "unknown dataset"),
        (["--dataset", "gad", "--model", "bert-base-uncased"], "does not download"),
        (["--dataset", "gad", "--head", "sigmoid"], "does not apply to relation"),
    ],
)
def test_bad_finetune_input_is_one_line(args, message, shared_data, tiny_model, tmp_path, capsys):
    if "--model" not in args:
        args = [*args, "--model", str(tiny_model)]
    code = main(["finetune", *args, "--data", str(shared_data), "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("blurbkit: error:")]
    assert code == 2
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_model_dir_without_weights_is_refused(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    code = main(["finetune", "--dataset", "gad", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "r")])
    assert code == 2
    assert "no *.safetensors weights" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.timeout(1200)  # the real 22M-parameter MiniLM: about 30 s alone, much more on a busy 2-core machine
def test_real_minilm_learns_bc5chem_from_a_few_dozen_sentences(shared_data, tmp_path):
    """The embedded pretrained MiniLM, 128 training sentences: it must beat the untrained baseline."""
    metrics = finetune("bc5chem", out=None, data=str(shared_data), epochs=2, batch_size=8, lr=1e-4,
                       max_train_examples=128, max_eval_examples=48, max_test_examples=150, progress=False)
    # an untrained tagger scores ~0 entity F1 (all O); 160 sentences gave 0.59 here
    assert metrics["test"]["score"] > 0.2, metrics["test"]


@pytest.mark.parametrize("budget", [16, 2048])
def test_inference_batches_cover_every_example_once_within_the_token_budget(budget):
    from blurbkit.runtime.batching import sorted_batches

    lengths = [3, 40, 7, 7, 120, 1, 64, 9, 300, 12] * 7
    examples = [{"input_ids": [0] * n} for n in lengths]
    batches = sorted_batches(examples, budget)
    assert sorted(i for batch in batches for i in batch) == list(range(len(examples)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= budget or len(batch) == 1  # one over-long example still gets its own batch
