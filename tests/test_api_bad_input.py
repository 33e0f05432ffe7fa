"""The Python API takes the values a user types: a wrong kind is one BlurbkitError naming the
argument, never a letter-by-letter result, a raw TypeError deep inside, or "false" read as true; and
a library call leaves the process's torch thread count as it found it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import blurbkit
from blurbkit.errors import BlurbkitError

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
NER = FIXTURES / "ner_bio"


@pytest.fixture(scope="module")
def predictor():
    return blurbkit.Predictor.load(NER)


@pytest.fixture(scope="module")
def pipe():
    return blurbkit.Pipeline.load(ner=[NER])


@pytest.mark.parametrize("inputs, message", [
    ("Aspirin", "inputs: expected a list, not one str (wrap a single text: [text])"),
    (None, "inputs: expected a list, not None"),
    ({"text": "Aspirin"}, "inputs: expected a list, not {'text': 'Aspirin'}"),
])
def test_predict_refuses_what_is_not_a_list(predictor, inputs, message):
    with pytest.raises(BlurbkitError, match=re.escape(message)):
        predictor.predict(inputs)


def test_the_pipeline_refuses_one_string_and_documents_without_text(pipe):
    with pytest.raises(BlurbkitError, match="documents: expected a list, not one str"):
        pipe("Aspirin works.")
    with pytest.raises(BlurbkitError, match="documents: expected an iterable of documents, not str"):
        next(pipe.stream("abc"))
    with pytest.raises(BlurbkitError, match="batch_size must be a whole number of at least 1, not '2'"):
        next(pipe.stream(["Aspirin works."], batch_size="2"))
    with pytest.raises(BlurbkitError, match="document 0: expected an object with 'text'.*it has 'abstract'"):
        pipe([{"id": "1", "abstract": "Aspirin works."}])
    assert len(pipe(["Aspirin works.", {"id": "d2", "text": "Caffeine helps."}])) == 2


def test_pipeline_load_takes_one_directory_or_a_list_and_checks_its_options():
    assert [m.path for m in blurbkit.Pipeline.load(ner=str(NER)).ner] == [NER]
    with pytest.raises(BlurbkitError, match="ner: expected directory paths, not 5"):
        blurbkit.Pipeline.load(ner=[5])
    with pytest.raises(BlurbkitError, match="type_map must map NER type to relation type"):
        blurbkit.Pipeline.load(ner=[NER], type_map=["x"])
    with pytest.raises(BlurbkitError, match="relation_types must map a relation model"):
        blurbkit.Pipeline.load(ner=[NER], relation_types={"chemprot": "CHEMICAL"})
    with pytest.raises(BlurbkitError, match="keep_negative must be true or false, not 'no'"):
        blurbkit.Pipeline.load(ner=[NER], keep_negative="no")


@pytest.mark.parametrize("options, message", [
    ({"lr": "fast"}, "lr must be a number or None, not 'fast'"),
    ({"lr": True}, "lr must be a number or None, not True"),
    ({"epochs": 1.5}, "epochs must be a whole number or None, not 1.5"),
    ({"overwrite": "false"}, "overwrite must be true or false, not 'false'"),
    ({"lrr": 1e-4}, "unknown fine-tuning option(s): lrr (known: "),
    ({"out": ""}, "out '': give a run directory"),
    ({"part_options": [1]}, "part_options must be a dict"),
    ({"adv_epsilon": 0.5, "adv_steps": 2}, "adv_epsilon, adv_steps: only with adversarial=True (--adversarial)"),
])
def test_finetune_refuses_values_of_the_wrong_kind_before_any_work(options, message, tmp_path):
    options = {"out": tmp_path / "run", **options}
    with pytest.raises(BlurbkitError) as err:
        blurbkit.finetune("gad", data=tmp_path / "nowhere", **options)
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("call, message", [
    (lambda: blurbkit.Predictor.load(None), "model_dir must be a model directory path, not None"),
    (lambda: blurbkit.Predictor.load(NER, settings=["threads"]), "settings must be a dict of runtime setting"),
    (lambda: blurbkit.blurb_score([("bc5chem", 80)]), "scores must map dataset to percentage"),
    (lambda: blurbkit.load_split("gad", "test", data=5), "data must be a folder path or None, not 5"),
    (lambda: blurbkit.load_split(["gad"], "test"), "unknown dataset ['gad']"),
    (lambda: blurbkit.load_split("BC5-chem", "test"), "unknown dataset 'BC5-chem' (did you mean 'bc5chem'? known: "),
    (lambda: blurbkit.evaluate("gad", "test", None), "predictions_path must be a file path, not None"),
])
def test_other_api_arguments_of_the_wrong_kind_are_one_error(call, message):
    with pytest.raises(BlurbkitError) as err:
        call()
    assert message in str(err.value)


def test_predicting_leaves_the_callers_thread_count(predictor):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        one_thread = blurbkit.Predictor.load(NER, settings={"threads": 1})
        assert torch.get_num_threads() == 2  # loading changes nothing process-wide
        assert one_thread.predict(["Aspirin works."]) == predictor.predict(["Aspirin works."])
        assert torch.get_num_threads() == 2  # nor does predicting on one thread
    finally:
        torch.set_num_threads(before)
