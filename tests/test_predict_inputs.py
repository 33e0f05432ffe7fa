"""Bad inputs to `blurbkit predict` and `Predictor`: one line naming the input file's line (exit 2),
no traceback, nothing written; and inputs that get no prediction say so. Models: the tiny
fixtures of tests/fixtures/v0_1_models (ner_bio; relation = chemprot, dummified text), and copies
of the relation model recorded as reading the unmasked sentence (transform "original") or as a QA
model (transform "question_context"): same weights, other input forms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.inference.predictor import Predictor
from blurbkit.tasks.types.base import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
PAIR = [{"start": 0, "end": 7, "type": "CHEMICAL"}, {"start": 17, "end": 21, "type": "GENE"}]
ORIGINAL = {"text": "aspirin inhibits EGFR", "entities": PAIR}


def _variant(root: Path, name: str, **recipe: object) -> Path:
    model = shutil.copytree(FIXTURES / "relation", root / name)
    table = json.loads((model / "blurbkit.json").read_text())
    table.update(recipe)
    (model / "blurbkit.json").write_text(json.dumps(table))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"dummified": FIXTURES / "relation", "ner": FIXTURES / "ner_bio",
            "original": _variant(root, "original", transform="original"),
            "qa": _variant(root, "qa", dataset="pubmedqa", task_type="qa", transform="question_context",
                           labels=["yes", "no", "maybe", "a", "b", "c"])}


def _predict(model: Path, tmp_path: Path, lines: list[str], capsys, *flags: str) -> tuple[int, str, Path]:
    """Run `predict` on a .jsonl file of `lines`; (exit code, stderr, the --out file)."""
    path = tmp_path / "F.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = main(["predict", *(flags or ("--model",)), str(model), "--input", str(path), "--out", str(out)])
    return code, capsys.readouterr().err, out


def _refused(code: int, err: str, out: Path, says: str) -> None:
    assert code == 2 and "Traceback" not in err and not out.exists()
    line = next(line for line in err.splitlines() if "error" in line)
    assert "F.jsonl:1:" in line and says in line, err


# ---- relation inputs (finding 2) ----------------------------------------------------------------

def test_dummified_model_refuses_text_without_placeholders_even_beside_original(models, tmp_path, capsys):
    line = json.dumps({"text": "no placeholders here", "original": ORIGINAL})
    _refused(*_predict(models["dummified"], tmp_path, [line], capsys), "found 0")
    with pytest.raises(InputError, match="found 0"):
        Predictor.load(models["dummified"]).predict([{"text": "no placeholders here", "original": ORIGINAL}])


def test_unmasked_sentence_model_takes_the_documented_original_alone(models):
    predictor = Predictor.load(models["original"])
    labels = predictor.predict([{"original": ORIGINAL}, {"original": ORIGINAL, "text": "not read"}])
    assert all(label in predictor.recipe.labels for label in labels)
    with pytest.raises(InputError, match="give 'original'"):  # placeholders are not what it reads
        predictor.predict(["@CHEMICAL$ inhibits @GENE$"])


@pytest.mark.parametrize(("original", "says"), [
    ({"text": "aspirin inhibits EGFR", "entities": [{"start": 0}, {"start": 17}]}, "integer 'start' and 'end'"),
    ("x", "'original' must be an object"),
    ({"text": "aspirin inhibits EGFR", "entities": PAIR[:1]}, "found 1"),
    ({"text": "aspirin inhibits EGFR", "entities": [*PAIR, PAIR[0]]}, "found 3"),
    ({"text": "aspirin", "entities": PAIR}, "not within its text"),
    ({"entities": PAIR}, "needs 'text'"),
])
def test_a_malformed_original_is_one_line_naming_the_input(models, tmp_path, capsys, original, says):
    _refused(*_predict(models["original"], tmp_path, [json.dumps({"original": original})], capsys), says)


# ---- QA: a question longer than max_length (finding 3) ------------------------------------------

def test_a_question_that_leaves_no_room_for_the_context_is_one_line(models, tmp_path, capsys):
    long = json.dumps({"question": "does aspirin work " * 40, "context": "Aspirin works."})
    fine = json.dumps({"question": "does aspirin work ?", "context": "Aspirin works. " * 40})
    _refused(*_predict(models["qa"], tmp_path, [long, fine], capsys), "leaves no room for the context")
    code, err, out = _predict(models["qa"], tmp_path, [fine], capsys)
    assert code == 0 and len(out.read_text().splitlines()) == 1  # only the context is cut


def test_the_question_check_names_a_training_record_by_id(models):
    from blurbkit.models.transforms import RecordError, TransformContext, question_context

    predictor = Predictor.load(models["qa"])
    records = [{"id": "q1", "question": "ok ?", "context": "c"}, {"id": "q2", "question": "why " * 80, "context": "c"}]
    with pytest.raises(RecordError, match="record q2: the question is"):
        question_context(records, TransformContext(predictor.runner.tokenizer, predictor.recipe.max_length))


# ---- text that is not Unicode text (finding 4) ---------------------------------------------------

@pytest.mark.parametrize("flag", ["--model", "--ner"])
def test_a_lone_surrogate_is_one_line(models, tmp_path, capsys, flag):
    _refused(*_predict(models["ner"], tmp_path, ['{"text": "\\ud800 aspirin"}'], capsys, flag), "lone surrogate")


def test_the_predictor_refuses_a_lone_surrogate_and_keeps_surrogate_pairs(models):
    predictor = Predictor.load(models["ner"])
    with pytest.raises(InputError, match="input 1: field 'text': holds a lone surrogate"):
        predictor.predict(["aspirin", "\ud800 aspirin"])
    assert len(predictor.predict(["aspirin 😀"])) == 1


# ---- pairs cut off by max_length (finding 6) -----------------------------------------------------

def test_a_pair_past_max_length_gets_no_label_but_a_warning(models, tmp_path, capsys):
    from blurbkit.inference.predictor import InputWarning

    texts = ["@CHEMICAL$ binds @GENE$ .", "aspirin " * 80 + "@CHEMICAL$ binds @GENE$ ."]
    predictor = Predictor.load(models["dummified"])
    with pytest.warns(InputWarning, match="input 1: the pair is not predicted: both entities lie past"):
        labels = predictor.predict(texts)
    assert labels[0] in predictor.recipe.labels and labels[1] is None
    code, err, out = _predict(models["dummified"], tmp_path, [json.dumps({"text": t}) for t in texts], capsys)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and "F.jsonl:2: warning: the pair is not predicted" in err and "Traceback" not in err
    assert results[1]["prediction"] is None and "max_length" in results[1]["warning"] and "warning" not in results[0]


# ---- document JSON lines and JSON (findings 7, 8) ------------------------------------------------

def test_document_errors_name_the_file_line(models, tmp_path, capsys):
    lines = ['{"text": "aspirin"}', "", '{"text": 5}']
    code, err, out = _predict(models["ner"], tmp_path, lines, capsys, "--ner")
    assert code == 2 and "F.jsonl:3: 'text' and 'title' must be strings" in err and not out.exists()


@pytest.mark.parametrize("flag", ["--model", "--ner"])
def test_deeply_nested_json_is_one_line(models, tmp_path, capsys, flag):
    _refused(*_predict(models["ner"], tmp_path, ["[" * 100000 + "]" * 100000], capsys, flag), "nested too deeply")


def test_read_json_refuses_deep_nesting_and_lone_surrogates(tmp_path):
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import read_json

    for name, text, says in [("deep.json", "{\"a\": " + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
                             ("sur.json", '{"a": "\\udc00"}', "lone surrogate")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(BlurbkitError, match=says):
            read_json(tmp_path / name)
    (tmp_path / "pair.json").write_text('{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}')
    assert read_json(tmp_path / "pair.json") == {"a": "😀", "b": "\\ud800"}


def test_a_classifier_given_no_text_answers_but_says_so(models, tmp_path, capsys):
    from blurbkit.inference.predictor import InputWarning

    predictor = Predictor.load(models["qa"])
    inputs = [{"question": "Does aspirin help?", "context": "Aspirin helps."}, {"question": " ", "context": ""}]
    with pytest.warns(InputWarning, match="input 1: no text: its prediction is the model's prior"):
        labels = predictor.predict(inputs)
    assert all(label in predictor.recipe.labels for label in labels)
    code, err, out = _predict(models["qa"], tmp_path, [json.dumps(item) for item in inputs], capsys)
    assert code == 0 and "F.jsonl:2: warning: no text" in err and "F.jsonl:1:" not in err
    assert "warning" in json.loads(out.read_text().splitlines()[1])
