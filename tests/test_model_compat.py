"""Model directories are self-describing and stay loadable: directories saved by blurbkit 0.1.0
(tests/fixtures/v0_1_models, made by tests/fixtures/make_v0_1_models.py before the package layout
changed) load and predict as they did, and a BIOUL model's single-word entities are found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blurbkit.inference.predictor import Predictor

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
EXPECTED = json.loads((FIXTURES / "expected_v0_1.json").read_text("utf-8"))


@pytest.mark.parametrize("name", ["ner_bio", "relation"])
def test_models_saved_by_0_1_predict_as_they_did(name):
    predictor = Predictor.load(FIXTURES / name, settings={"precision": "fp32"})
    case = EXPECTED[name]
    assert predictor.predict(case["inputs"]) == case["predictions"]


def test_bioul_model_of_0_1_finds_single_word_entities():
    # The head predicts U-Chemical for every word: every word is a one-word entity. blurbkit 0.1.0's
    # Predictor read only B-/I- tags and returned no entity at all (recorded in expected_v0_1.json).
    predictor = Predictor.load(FIXTURES / "ner_bioul", settings={"precision": "fp32"})
    text = "Heparin and renal failure."
    (entities,) = predictor.predict([text])
    assert [(e["start"], e["end"], e["text"]) for e in entities] == [
        (0, 7, "Heparin"), (8, 11, "and"), (12, 17, "renal"), (18, 25, "failure"), (25, 26, ".")
    ]
    assert {e["type"] for e in entities} == {"Chemical"}
    assert EXPECTED["ner_bioul"]["predictions"] == [[], []]  # what 0.1.0 returned


def test_saved_recipe_records_the_scheme(tmp_path):
    from blurbkit.models.model import RECIPE_FILE, BlurbModel

    model, tokenizer = BlurbModel.load(FIXTURES / "ner_bioul")
    assert model.recipe.scheme is None  # 0.1.0 did not record it
    model.recipe.scheme = "bioul"
    model.save(tmp_path / "m", tokenizer)
    assert json.loads((tmp_path / "m" / RECIPE_FILE).read_text("utf-8"))["scheme"] == "bioul"
    (entities,) = Predictor.load(tmp_path / "m", settings={"precision": "fp32"}).predict(["Heparin and renal failure."])
    assert len(entities) == 5


def test_a_predictor_needs_no_registered_dataset(tmp_path, monkeypatch):
    import shutil

    from blurbkit.models.model import RECIPE_FILE

    shutil.copytree(FIXTURES / "relation", tmp_path / "m")
    recipe = json.loads((tmp_path / "m" / RECIPE_FILE).read_text("utf-8"))
    recipe["dataset"] = "a_dataset_nobody_registered"
    (tmp_path / "m" / RECIPE_FILE).write_text(json.dumps(recipe), encoding="utf-8")
    predictor = Predictor.load(tmp_path / "m", settings={"precision": "fp32"})
    assert predictor.predict(EXPECTED["relation"]["inputs"]) == EXPECTED["relation"]["predictions"]
