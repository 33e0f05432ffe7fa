"""blurbkit.Pipeline: sentences, entity offsets on Unicode text, candidate pairs, relation inputs,
batching and streaming, refusing a relation model no NER model can feed. Models: the tiny model
directories of tests/fixtures/v0_1_models (ner_bio: bc5chem, relation: chemprot), and a copy of
ner_bio relabelled as a GENE tagger (same weights, so it finds the same spans)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import blurbkit
from blurbkit.errors import BlurbkitError
from blurbkit.inference.pipeline import Pipeline
from blurbkit.inference.sentences import split_sentences
from blurbkit.tasks.registry import get_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"

UNICODE_DOCS = [
    {"id": "accents", "title": "Café-induced naïve T cells", "text": "Protéine kinase Cé était inhibée. Nouvelle phrase ici."},
    {"id": "decomposed", "text": "Cafe\u0301 and re\u0301sume\u0301 with caffeine."},
    {"id": "greek", "title": "α-synuclein and β-blockers", "text": "The Δ9-THC dose (5 µg) raised TNF-α levels."},
    {"id": "emoji", "text": "Aspirin 😀 helps 👩‍🔬 patients. Warfarin 🇫🇷 too!"},
    {"id": "cjk", "text": "阿司匹林治疗。 Aspirin 治疗 heparin 患者。"},
    "plain string document with aspirin",
    {"id": "empty", "title": "", "text": ""},
]


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """(chemical NER dir, gene NER dir, relation dir)."""
    root = tmp_path_factory.mktemp("pipeline_models")
    gene = shutil.copytree(FIXTURES / "ner_bio", root / "bc2gm" / "model")
    recipe = json.loads((gene / "blurbkit.json").read_text())
    recipe.update(dataset="bc2gm", labels=["O", "B-GENE", "I-GENE"])
    (gene / "blurbkit.json").write_text(json.dumps(recipe))
    (root / "bc2gm" / "metrics.json").write_text(json.dumps({"test": {"f1": 0.5, "precision": 0.4}}))
    return FIXTURES / "ner_bio", gene, FIXTURES / "relation"


@pytest.fixture(scope="module")
def full_pipeline(tiny_pipeline):
    chem, gene, relation = tiny_pipeline
    # fp32: batched and one-by-one answers can then be compared to the last digits that matter.
    return Pipeline.load(ner=[chem, gene], relations=[relation], keep_negative=True, settings={"precision": "fp32"})


def test_sentences_keep_offsets_and_follow_the_rule():
    text = "Clonidine 0.5 mg (e.g. i.v.) was given. The effect was reversed! Smith et al. Found it.\nJ. Doe agreed"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Clonidine 0.5 mg (e.g. i.v.) was given.", "The effect was reversed!", "Smith et al. Found it.", "J. Doe agreed"]
    other = "日本語です。次の文 😀. Ünïcode ends."
    assert [other[s:e] for s, e in split_sentences(other)] == ["日本語です。", "次の文 😀.", "Ünïcode ends."]
    assert split_sentences("   \n  ") == [] and split_sentences("") == []


def test_entities_have_exact_offsets_on_unicode_text(tiny_pipeline):
    chem, _, _ = tiny_pipeline
    pipe = blurbkit.Pipeline.load(ner=[chem])
    results = pipe(UNICODE_DOCS)
    assert [r["id"] for r in results] == ["accents", "decomposed", "greek", "emoji", "cjk", "5", "empty"]
    seen = set()
    for doc, result in zip(UNICODE_DOCS, results, strict=True):
        full = doc if isinstance(doc, str) else (doc["text"] if doc.get("title") is None else f"{doc['title']} {doc['text']}")
        for entity in result["entities"]:
            assert full[entity["start"]:entity["end"]] == entity["text"], (doc, entity)
            assert entity["type"] == "Chemical" and 0 < entity["confidence"] <= 1 and entity["model"] == "ner_bio"
            seen.add(entity["text"])
    assert results[-1]["entities"] == [] and results[-1]["relations"] == []
    # The fixture tagger marks every word, so each awkward word is an entity, whole: accents typed as
    # combining marks stay on their letters, an emoji sequence and a flag stay one symbol.
    assert all(result["entities"] for result in results[:-1])
    assert {"Café", "Cafe\u0301", "re\u0301sume\u0301", "α", "Δ9", "😀", "👩\u200d🔬", "🇫🇷", "阿司匹林治疗"} <= seen
    assert not {"\u0301", "\u200d", "🇫"} & seen


def test_a_long_sentence_is_windowed_and_every_offset_holds(tiny_pipeline):
    chem, _, _ = tiny_pipeline
    pipe = blurbkit.Pipeline.load(ner=[chem])
    text = " ".join(f"wörd{n} aspirin" for n in range(200))  # one sentence of 400 words, max_length 64
    entities = pipe([text])[0]["entities"]
    assert max(e["start"] for e in entities) > len(text) - 40
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)


def test_relation_model_without_its_entity_types_is_refused_at_load(tiny_pipeline):
    chem, _, relation = tiny_pipeline
    with pytest.raises(BlurbkitError) as err:
        Pipeline.load(ner=[chem], relations=[relation])
    message = str(err.value)
    assert "\n" not in message and "needs GENE entities" in message and "Chemical -> CHEMICAL" in message


def test_candidate_pairs_follow_the_trained_types_and_order(full_pipeline):
    pipe = full_pipeline
    model = pipe.relations[0]
    assert model.types == ["CHEMICAL", "GENE"] and model.pair_types == {("CHEMICAL", "GENE")}  # from the chemprot facts
    sentence = "aspirin inhibits COX1 and COX2 via heparin"
    entities = [
        {"start": 0, "end": 7, "type": "Chemical"},
        {"start": 17, "end": 21, "type": "GENE"},
        {"start": 26, "end": 30, "type": "protein"},  # protein -> GENE
        {"start": 35, "end": 42, "type": "Chemical"},
        {"start": 35, "end": 42, "type": "GENE"},  # the same mention as a gene: never paired with itself
        {"start": 8, "end": 16, "type": "Disease"},  # no relation type of this model
    ]
    pairs, skipped = model.candidates(sentence, entities, pipe.type_map)
    spans = [((a["start"], a["rtype"]), (b["start"], b["rtype"])) for a, b in pairs]
    assert not skipped
    assert spans == [((0, "CHEMICAL"), (17, "GENE")), ((0, "CHEMICAL"), (26, "GENE")), ((0, "CHEMICAL"), (35, "GENE")),
                     ((17, "GENE"), (35, "CHEMICAL")), ((26, "GENE"), (35, "CHEMICAL"))]
    record = model.record(sentence, *pairs[0], 0)
    assert record["text"] == "@CHEMICAL$ inhibits @GENE$ and COX2 via heparin"
    assert [record["text"][e["start"]:e["end"]] for e in record["entities"]] == ["@CHEMICAL$", "@GENE$"]
    assert [sentence[e["start"]:e["end"]] for e in record["original"]["entities"]] == ["aspirin", "COX1"]
    # A model trained with both orders gets both.
    model.both_orders = True
    both, _ = model.candidates(sentence, entities, pipe.type_map)
    assert len(both) == 2 * len(pairs) and ((both[1][0]["start"], both[1][1]["start"]) == (17, 0))
    model.both_orders = False


def test_relations_pair_entities_within_a_sentence_only(full_pipeline):
    pipe = full_pipeline
    doc = {"id": "d", "title": "aspirin and COX1", "text": "heparin binds. warfarin works."}
    result = pipe([doc])[0]
    entities = {e["id"]: e for e in result["entities"]}
    full = f"{doc['title']} {doc['text']}"
    sentence_of = {e["id"]: next(n for n, (s, t) in enumerate(split_sentences(doc["title"]) + [
        (len(doc["title"]) + 1 + s, len(doc["title"]) + 1 + t) for s, t in split_sentences(doc["text"])]) if s <= e["start"] < t)
        for e in result["entities"]}
    assert result["relations"], "the random tagger marks every word: pairs exist"
    for relation_ in result["relations"]:
        head, tail = entities[relation_["head"]], entities[relation_["tail"]]
        assert sentence_of[head["id"]] == sentence_of[tail["id"]]
        assert {head["type"], tail["type"]} == {"Chemical", "GENE"} and head["start"] < tail["start"]
        assert relation_["label"] in pipe.relations[0].recipe.labels and 0 < relation_["probability"] <= 1
        assert full[head["start"]:head["end"]] == head["text"]
    # Default: pairs predicted as the no-relation label are left out.
    pipe.keep_negative = False
    try:
        plain = pipe([doc])[0]["relations"]
    finally:
        pipe.keep_negative = True
    assert all(r["label"] != "false" for r in plain)
    assert _shape({"id": "d", "entities": [], "relations": plain}) == _shape(
        {"id": "d", "entities": [], "relations": [r for r in result["relations"] if r["label"] != "false"]})


def test_relation_labels_are_what_the_relation_model_says_alone(tiny_pipeline, tmp_path):
    """Each pair's label and probability are the relation model's own answer for the sentence with
    the pair's two mentions replaced by its placeholders, built here by hand rather than by the pipeline."""
    chem, gene, _ = tiny_pipeline
    sharp = _relation_model_that_reads_words(tmp_path / "relation")
    pipe = Pipeline.load(ner=[chem, gene], relations=[sharp], keep_negative=True, settings={"precision": "fp32"})
    doc = {"id": "d", "title": "aspirin caused bleeding in patients", "text": "warfarin and heparin with renal failure. heparin given."}
    result = pipe([doc])[0]
    full = f"{doc['title']} {doc['text']}"
    spans = split_sentences(doc["title"]) + [(len(doc["title"]) + 1 + s, len(doc["title"]) + 1 + t)
                                             for s, t in split_sentences(doc["text"])]
    entities = {e["id"]: e for e in result["entities"]}
    placeholder = {"Chemical": "@CHEMICAL$", "GENE": "@GENE$"}
    texts = []
    for relation_ in result["relations"]:
        head, tail = entities[relation_["head"]], entities[relation_["tail"]]
        start, end = next((s, t) for s, t in spans if s <= head["start"] < t)
        text = full[start:head["start"]] + placeholder[head["type"]] + full[head["end"]:tail["start"]]
        texts.append(text + placeholder[tail["type"]] + full[tail["end"]:end])
    assert len(texts) >= 20 and len(set(texts)) == len(texts)
    predictor = blurbkit.Predictor.load(sharp, settings={"precision": "fp32"})
    assert [r["label"] for r in result["relations"]] == predictor.predict(texts)
    outputs = predictor.runner.outputs(predictor.encode(predictor.task.records_from_inputs(texts)), probabilities=True)
    probabilities = [float(probs[index]) for index, probs in outputs]
    assert [r["probability"] for r in result["relations"]] == pytest.approx(probabilities, abs=2e-6)
    distinct = {round(p, 6) for p in probabilities}
    assert len(distinct) > len(probabilities) / 2, "a pair given another pair's answer would show"


def _relation_model_that_reads_words(folder: Path) -> Path:
    """A random ChemProt-style relation model whose answers differ from pair to pair: the fixture's
    has a 5-piece vocabulary (every word is [UNK], so pairs of one length get one answer) and an
    encoder too weak to mix tokens into [CLS]; this one has MiniLM's vocabulary and large weights."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from blurbkit.models.loading import default_model_dir
    from blurbkit.models.model import BlurbModel, ModelRecipe

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, initializer_range=0.5)
    labels = json.loads((FIXTURES / "relation" / "blurbkit.json").read_text())["labels"]
    recipe = ModelRecipe("chemprot", "relation", labels, "text", "cls", "softmax", 64)
    BlurbModel(BertModel(config, add_pooling_layer=False), recipe).save(folder, tokenizer)
    return folder


def test_batching_and_streaming_give_the_same_results(full_pipeline):
    pipe = full_pipeline
    docs = [{"id": "a", "title": "aspirin and COX1", "text": "heparin binds β-arrestin. Done."},
            {"id": "b", "text": "warfarin 😀 CYP2C9 and a longer sentence with several more words in it."},
            {"id": "c", "text": ""}, {"id": "d", "text": "日本語 aspirin 治疗 TNF-α."}, {"id": "e", "text": "one"}]
    together = pipe(docs)
    streamed = list(pipe.stream(iter(docs), batch_size=2))
    one_by_one = [pipe([doc])[0] for doc in docs]
    for a, b, c in zip(together, streamed, one_by_one, strict=True):
        assert _shape(a) == _shape(b) == _shape(c)
        for x, y in zip(a["entities"], c["entities"], strict=True):
            # fp32: padding moves nothing but rounding (a mask leaking padding into attention moves
            # the tiny tagger's confidences by 1e-3 and more)
            assert x["confidence"] == pytest.approx(y["confidence"], abs=1e-5)


def _shape(result):
    return (result["id"], [(e["id"], e["start"], e["end"], e["type"]) for e in result["entities"]],
            [(r["head"], r["tail"], r["label"], round(r["probability"], 4)) for r in result["relations"]])


def test_describe_reads_the_run_test_score(full_pipeline):
    described = full_pipeline.describe()
    assert [m["name"] for m in described["ner"]] == ["ner_bio", "bc2gm"]
    assert described["ner"][1]["test"] == {"f1": 0.5, "precision": 0.4} and "test" not in described["ner"][0]


def test_pair_facts_are_recorded_from_training_records():
    task = get_dataset("chemprot").task
    facts = task.pair_facts(get_dataset("chemprot"))
    assert facts["entity_types"] == ["CHEMICAL", "GENE"] and facts["pair_types"] == [["CHEMICAL", "GENE"]]
    assert facts["order"] == "text" and facts["negative_label"] == "false"
    ddi = task.pair_facts(get_dataset("ddi"), [
        {"entities": [{"start": 9, "end": 12, "type": "DRUG"}, {"start": 0, "end": 3, "type": "DRUG"}]}])
    assert ddi["pair_types"] == [["DRUG", "DRUG"]] and ddi["order"] == "both"
