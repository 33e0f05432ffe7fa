"""Fine-tuned models on new text: the Python Predictor and `blurbkit predict`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.inference.predictor import Predictor
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.tagging import tags_to_spans
from blurbkit.tasks.types.base import InputError
from blurbkit.tasks.types.token import split_words
from blurbkit.train.api import finetune


def test_tags_to_spans_follows_conlleval_chunking():
    assert tags_to_spans(["B-X", "I-X", "O", "I-X", "B-Y", "I-X"]) == [(0, 2, "X"), (3, 4, "X"), (4, 5, "Y"), (5, 6, "X")]
    assert tags_to_spans(["I-PAR", "I-PAR", "O", "I-OUT"]) == [(0, 2, "PAR"), (3, 4, "OUT")]


def test_split_words_keeps_offsets():
    text = "Aspirin-induced (acute) hepatitis."
    assert [(w, text[s:e]) for w, s, e in split_words(text)][:3] == [("Aspirin", "Aspirin"), ("-", "-"), ("induced", "induced")]
    decomposed = "Cafe\u0301-induced re\u0301sume\u0301 \U0001F469\u200d\U0001F52C, m² ok\r\n"
    assert [(w, decomposed[s:e]) for w, s, e in split_words(decomposed)] == [
        (w, w) for w in ("Cafe\u0301", "-", "induced", "re\u0301sume\u0301", "\U0001F469\u200d\U0001F52C", ",", "m²", "ok")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("runs")
    model = build_tiny_bert(root / "tiny")
    for dataset in ("bc5chem", "gad"):
        finetune(dataset, out=root / dataset, data=str(shared_data), model=str(model), epochs=1,
                 max_train_examples=16, max_eval_examples=8, max_test_examples=8, progress=False)
    return root


def test_predictor_on_raw_sentences_returns_character_spans(runs):
    texts = ["Aspirin-induced hepatitis was treated with N-acetylcysteine.", ""]
    # A model just trained on 16 sentences may tag nothing; the saved fixture tagger tags every word,
    # so the spans are checked on entities that exist.
    fixture = Path(__file__).parent / "fixtures" / "v0_1_models" / "ner_bio"
    for model in (runs / "bc5chem" / "model", fixture):
        results = Predictor.load(model).predict(texts)
        assert len(results) == 2 and results[1] == []
        for text, entities in zip(texts, results, strict=True):
            for entity in entities:
                assert text[entity["start"] : entity["end"]] == entity["text"] and entity["type"] == "Chemical"
    assert [e["text"] for e in results[0]][:3] == ["Aspirin", "-", "induced"] and results[0][-2]["text"] == "acetylcysteine"


@pytest.mark.parametrize("name", ["ner_bio", "relation"])
def test_no_inputs_give_no_predictions(name):
    model = Predictor.load(Path(__file__).parent / "fixtures" / "v0_1_models" / name)
    assert model.predict([]) == []


def test_relation_model_directory_records_its_entity_pairs(runs):
    pairs = json.loads((runs / "gad" / "model" / "blurbkit.json").read_text())["pairs"]
    assert pairs["entity_types"] == ["DISEASE", "GENE"] and pairs["pair_types"] == [["DISEASE", "GENE"]]
    assert pairs["order"] == "text" and pairs["negative_label"] == "0"
    assert json.loads((runs / "bc5chem" / "model" / "blurbkit.json").read_text())["pairs"] is None


def test_predict_command_on_relation_inputs(runs, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text("@GENE$ variants increase the risk of @DISEASE$ .\nNo link between @GENE$ and @DISEASE$ .\n")
    assert main(["predict", "--model", str(runs / "gad" / "model"), "--input", str(inputs), "--out", str(tmp_path / "o.jsonl")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [line["prediction"] in ("0", "1") for line in lines] == [True, True]


def test_relation_inputs_are_sentences_with_the_pairs_two_placeholders(runs, tmp_path, capsys):
    predictor = Predictor.load(runs / "gad" / "model")
    records = predictor.task.records_from_inputs(["@GENE$ and @DISEASE$ .", "in @GENE-DISEASE$ x"])
    assert [[(e["start"], e["end"]) for e in r["entities"]] for r in records] == [[(0, 6), (11, 20)], [(3, 17), (3, 17)]]
    spans = [{"start": 0, "end": 5}, {"start": 10, "end": 16}]
    for bad, problem in [("BRCA1 variants raise the risk of cancer .", "found 0"), ("@GENE$ @GENE$ @DISEASE$", "found 3"),
                         ({"text": "BRCA1 and cancer", "entities": spans}, "'entities' is not read")]:
        with pytest.raises(InputError, match=problem):
            predictor.predict(["@GENE$ is fine with @DISEASE$ .", bad])
    inputs = tmp_path / "in.txt"
    inputs.write_text("@GENE$ variants increase the risk of @DISEASE$ .\n\nBRCA1 variants raise the risk of cancer .\n")
    assert main(["predict", "--model", str(runs / "gad" / "model"), "--input", str(inputs), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{inputs}:3:" in err and "found 0" in err and "Traceback" not in err and not (tmp_path / "o.jsonl").exists()


def test_an_entity_start_relation_model_reads_the_placeholders_spans(tmp_path):
    from blurbkit.models.build import build_model
    from blurbkit.models.model import ModelRecipe

    recipe = ModelRecipe("gad", "relation", ["0", "1"], "text", "entity_start", "softmax", 64)
    predictor = Predictor(*build_model(recipe, build_tiny_bert(tmp_path / "tiny")))
    featurizer, tokenizer, read = predictor.runner.model.featurizer, predictor.runner.tokenizer, []

    def record_the_rows_read(module, args, output):  # the three tokens from each row the featurizer gathers
        for ids, rows in zip(args[1]["input_ids"], module.rows(args[1]), strict=True):
            tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
            read.append([" ".join(tokens[row : row + 3]) for row in rows.tolist()])

    hook = featurizer.register_forward_hook(record_the_rows_read)
    predictions = predictor.predict(["@GENE$ and @DISEASE$ .", "in @GENE-DISEASE$ ."])
    hook.remove()
    assert [p in ("0", "1") for p in predictions] == [True, True]
    assert sorted(read) == [["@ gene $", "@ disease $"], ["@ gene -", "@ gene -"]]


def test_predict_refuses_a_directory_that_is_not_a_fine_tuned_model(tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text("text\n")
    assert main(["predict", "--model", str(tmp_path), "--input", str(inputs)]) == 2
    assert "not a fine-tuned blurbkit model" in capsys.readouterr().err
