"""The bi-encoder (siamese) featurizer and the cosine head: each sentence of a pair is encoded
exactly as it would be alone, the CoSENT loss is the published formula, parts that do not fit are
refused in one line, and a sentence-similarity run trains end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from blurbkit.cli.main import main
from blurbkit.data.load import load_split
from blurbkit.errors import BlurbkitError
from blurbkit.models.build import check_parts_apply
from blurbkit.models.featurizers import FEATURIZERS
from blurbkit.models.heads import HEADS
from blurbkit.models.model import ModelRecipe
from blurbkit.models.transforms import TRANSFORMS, TransformContext
from blurbkit.runtime.batching import collate
from blurbkit.tasks.types import get_task_type

PAIRS = [
    {"id": "p0", "text_a": "Aspirin lowers fever.", "text_b": "Fever was reduced by a low dose of aspirin in most patients.",
     "score": 3.5},
    {"id": "p1", "text_a": "The BRCA1 gene is mutated in many hereditary breast cancers of young women.",
     "text_b": "Mice were fed.", "score": 0.2},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from blurbkit.models.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def tiny(model_dir):
    from blurbkit.models.loading import load_encoder, load_tokenizer

    return load_encoder(model_dir).eval(), load_tokenizer(model_dir)


def _alone(encoder, tokenizer, text: str) -> torch.Tensor:
    """The mean-pooled encoding of [CLS] text [SEP] run through the encoder by itself."""
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return encoder(**encoded).last_hidden_state[0].mean(0)


def test_each_sentence_is_encoded_as_if_alone(tiny):
    encoder, tokenizer = tiny
    batch = collate(TRANSFORMS.get("sentence_pair")(PAIRS, TransformContext(tokenizer, 64)), tokenizer.pad_token_id)
    featurizer = FEATURIZERS.get("siamese_mean")(32)
    inputs = featurizer.encoder_inputs({k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    assert inputs["input_ids"].size(0) == 4 and inputs["input_ids"].size(1) <= batch["input_ids"].size(1)
    for row, text in enumerate([PAIRS[0]["text_a"], PAIRS[1]["text_a"], PAIRS[0]["text_b"], PAIRS[1]["text_b"]]):
        length = int(inputs["attention_mask"][row].sum())
        assert inputs["input_ids"][row, :length].tolist() == tokenizer(text)["input_ids"], row
    assert int(inputs["token_type_ids"].abs().sum()) == 0
    with torch.no_grad():
        features, mask = featurizer(encoder(**inputs).last_hidden_state, batch)
    assert mask is None and features.shape == (2, 2, 32)
    for row, pair in enumerate(PAIRS):
        torch.testing.assert_close(features[row, 0], _alone(encoder, tokenizer, pair["text_a"]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(features[row, 1], _alone(encoder, tokenizer, pair["text_b"]), atol=1e-5, rtol=1e-4)


def test_truncated_pairs_and_an_empty_second_sentence_split_as_the_joint_row_holds_them(tiny):
    encoder, tokenizer = tiny
    pairs = [*PAIRS, {"id": "p2", "text_a": "Only one sentence here.", "text_b": "", "score": 0.0}]
    batch = collate(TRANSFORMS.get("sentence_pair")(pairs, TransformContext(tokenizer, 16)), tokenizer.pad_token_id)
    featurizer = FEATURIZERS.get("siamese_mean")(32)
    inputs = featurizer.encoder_inputs({k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    width = inputs["input_ids"].size(1)
    assert width < batch["input_ids"].size(1)  # rows cut to the longest single sentence, not the joint length
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for row in range(3):
        joint = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        split = joint.index(sep) + 1
        first = inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist()
        second = inputs["input_ids"][3 + row][inputs["attention_mask"][3 + row].bool()].tolist()
        assert first == joint[:split] and second == [cls, *joint[split:]], row
    assert inputs["input_ids"][5][inputs["attention_mask"][5].bool()].tolist() == [cls, sep]  # the empty sentence
    with torch.no_grad():
        features, _ = featurizer(encoder(**inputs).last_hidden_state, batch)
    assert features.shape == (3, 2, 32) and torch.isfinite(features).all()


def test_a_tokenizer_without_second_segment_ids_is_refused(tiny):
    _, tokenizer = tiny
    batch = collate(TRANSFORMS.get("sentence_pair")(PAIRS, TransformContext(tokenizer, 64)), tokenizer.pad_token_id)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")} | {"token_type_ids": torch.zeros_like(batch["input_ids"])}
    with pytest.raises(BlurbkitError, match="needs segment ids that mark the second sentence"):
        FEATURIZERS.get("siamese_mean")(32).encoder_inputs(inputs)


def test_cosine_head_predicts_the_cosine_and_cosent_is_the_published_formula():
    head = HEADS.get("cosine")(32)
    u, v = torch.randn(3, 32), torch.randn(3, 32)
    scores = head(torch.stack([u, v], dim=1))
    expected = [float(torch.dot(a, b) / (a.norm() * b.norm())) for a, b in zip(u, v, strict=True)]
    assert head.predict(scores) == pytest.approx(expected, abs=1e-6)
    assert list(head.parameters()) == []  # nothing to learn: before training it scores the embeddings as they are
    cos = torch.tensor([[0.9], [0.1], [0.5]])
    gold = torch.tensor([1.0, 3.0, 2.0])  # ranked pairs (i more similar than j): (1,0), (1,2), (2,0)
    terms = [20 * (0.9 - 0.1), 20 * (0.5 - 0.1), 20 * (0.9 - 0.5)]  # 20 * (cos_j - cos_i)
    assert float(head.loss(cos, gold)) == pytest.approx(math.log(1 + sum(math.exp(t) for t in terms)), rel=1e-5)
    assert float(head.loss(cos, torch.tensor([2.0, 2.0, 2.0]))) == pytest.approx(0.0)  # no ranked pair, no loss
    assert float(head.loss(torch.tensor([[0.1], [0.9], [0.5]]), gold)) < float(head.loss(cos, gold))  # right order costs less


def test_pair_parts_must_come_together_and_need_pairs():
    def recipe(featurizer: str, head: str, task: str = "similarity", transform: str = "sentence_pair") -> ModelRecipe:
        return ModelRecipe(dataset="x", task_type=task, labels=["score"], transform=transform,
                           featurizer=featurizer, head=head, max_length=64)

    similarity = get_task_type("similarity")
    check_parts_apply(recipe("siamese_mean", "cosine"), similarity)
    with pytest.raises(BlurbkitError, match="head 'regression' reads vector features; featurizer 'siamese_mean' gives pair"):
        check_parts_apply(recipe("siamese_mean", "regression"), similarity)
    with pytest.raises(BlurbkitError, match="head 'cosine' reads pair features; featurizer 'cls' gives vector"):
        check_parts_apply(recipe("cls", "cosine"), similarity)
    with pytest.raises(BlurbkitError, match="featurizer 'siamese_mean' does not apply to relation"):
        check_parts_apply(recipe("siamese_mean", "cosine", task="relation", transform="text"), get_task_type("relation"))


def test_a_siamese_similarity_run_trains_and_saves(model_dir, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--dataset", "biosses", "--data", str(shared_data), "--model", str(model_dir),
                 "--out", str(out), "--featurizer", "siamese_mean", "--head", "cosine", "--epochs", "2",
                 "--batch-size", "8", "--lr", "1e-3", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == "pearson" and -1 <= metrics["test"]["score"] <= 1
    recipe = json.loads((out / "model" / "blurbkit.json").read_text())
    assert (recipe["featurizer"], recipe["head"]) == ("siamese_mean", "cosine")
    # The saved model predicts what the run scored: the test predictions file, from the reloaded directory.
    from blurbkit.inference.predictor import Predictor

    saved = [json.loads(line) for line in (out / "predictions" / "test.jsonl").read_text().splitlines()]
    test = {r["id"]: r for r in load_split("biosses", "test", str(shared_data))}
    predictor = Predictor.load(out / "model")
    again = predictor.predict([{"text_a": test[p["id"]]["text_a"], "text_b": test[p["id"]]["text_b"]} for p in saved])
    assert again == pytest.approx([p["prediction"] for p in saved], abs=2e-3)  # bf16 batches may differ slightly


def test_adversarial_training_with_the_siamese_featurizer_is_refused_before_any_data(model_dir, tmp_path, capsys):
    code = main(["finetune", "--dataset", "biosses", "--data", str(tmp_path / "no-data"), "--model", str(model_dir),
                 "--out", str(tmp_path / "run"), "--featurizer", "siamese_mean", "--head", "cosine", "--adversarial",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--adversarial does not combine with featurizer 'siamese_mean'" in err and "Traceback" not in err


def test_mismatched_pair_parts_are_one_line_before_training(model_dir, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--dataset", "biosses", "--data", str(shared_data), "--model", str(model_dir),
                 "--out", str(out), "--head", "cosine", "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("blurbkit: error:")]
    assert code == 2 and len(errors) == 1 and "head 'cosine' reads pair features" in errors[0], err
    assert "Traceback" not in err and not (out / "metrics.json").exists()
