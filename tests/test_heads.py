"""Heads and featurizers of the modeling-choice ablations: CRF decoding on hand-computed cases,
shapes and masking (padding never changes an output) on a tiny random BERT, relation inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from blurbkit.errors import BlurbkitError
from blurbkit.models.build import check_parts_apply
from blurbkit.models.featurizers import FEATURIZERS
from blurbkit.models.heads import HEADS
from blurbkit.models.model import ModelRecipe
from blurbkit.models.transforms import TRANSFORMS, TransformContext
from blurbkit.models.transforms_relation import MARKERS, mark_entities
from blurbkit.runtime.batching import collate
from blurbkit.tasks.types import get_task_type

# --- CRF on hand-made cases -------------------------------------------------------------------
# Tags O=0, B=1, I=2. Starting in I and O -> I are forbidden (-100), B -> I is rewarded (+1).
# Emissions: t0 [0, 1, 2] (greedy: I), t1 [1, 0, 0.5] (greedy: O), t2 [0, 0.1, 0.2].
# Viterbi by hand: delta0 = [0, 1, -98]; delta1 = [2 (from B), 1 (from B), 2.5 (from B)];
# delta2 = [2.5, 2.6, 2.7] (each from I). Best of length 3: B I I (2.7); of length 2: B I (2.5).
# With end transitions [0, 0, -5]: finals [2.5, 2.6, -2.3] -> B I B (2.6).
EMISSIONS = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.5], [0.0, 0.1, 0.2]])


def _crf_head(end: list[float] | None = None):
    head = HEADS.get("crf")(4, 3, dropout=0.0, crf_lr_scale=1)
    crf = head.crf  # the transition parameters (torchcrf reads them, scaled, at each call)
    with torch.no_grad():
        crf.start_transitions.copy_(torch.tensor([0.0, 0.0, -100.0]))
        crf.end_transitions.copy_(torch.tensor(end or [0.0, 0.0, 0.0]))
        crf.transitions.zero_()
        crf.transitions[0, 2] = -100.0
        crf.transitions[1, 2] = 1.0
    return head


def test_crf_viterbi_matches_hand_computed_paths():
    head = _crf_head()
    scores = torch.stack([EMISSIONS, EMISSIONS, torch.zeros(3, 3)])
    mask = torch.tensor([[True, True, True], [True, True, False], [False, False, False]])
    assert scores[0].argmax(-1).tolist() == [2, 0, 2]  # greedy would pick an illegal path
    assert head.predict(scores, mask) == [[1, 2, 2], [1, 2], []]
    assert _crf_head(end=[0.0, 0.0, -5.0]).predict(scores[:1], mask[:1]) == [[1, 2, 1]]


def test_crf_transitions_are_scaled_for_the_encoder_learning_rate():
    head = HEADS.get("crf")(4, 3, crf_lr_scale=20)  # not the default 100: the option must reach the layer

    def scores_torchcrf_uses() -> torch.Tensor:  # bound from the raw parameters on every loss / decode
        head.crf._bind()
        return head.crf.crf.transitions.detach().clone()

    before = scores_torchcrf_uses()
    optimizer = torch.optim.AdamW(head.parameters(), lr=5e-5, weight_decay=0.0)
    head.loss(torch.randn(2, 4, 3), torch.randint(0, 3, (2, 4)), torch.ones(2, 4, dtype=torch.bool)).backward()
    optimizer.step()
    # Adam moves a raw parameter by about lr whatever its gradient: the scores must move 20 times that
    moved = (scores_torchcrf_uses() - before).abs().max()
    assert moved.item() == pytest.approx(20 * 5e-5, rel=0.05)
    assert before.abs().max().item() <= 0.1  # torchcrf's own initialisation, not 20 times it
    assert set(dict(head.named_parameters())) == {"linear.weight", "linear.bias", "crf.start_transitions",
                                                   "crf.end_transitions", "crf.transitions"}


def test_crf_loss_is_the_per_word_negative_log_likelihood():
    head = _crf_head()
    crf = head.crf

    def path_score(path):
        total = crf.start_transitions[path[0]] + EMISSIONS[0, path[0]] + crf.end_transitions[path[-1]]
        for t in range(1, len(path)):
            total = total + crf.transitions[path[t - 1], path[t]] + EMISSIONS[t, path[t]]
        return total

    log_z = torch.logsumexp(torch.stack([path_score(p) for p in itertools.product(range(3), repeat=3)]), 0)
    gold = torch.tensor([[1, 2, 0]])
    loss = head.loss(EMISSIONS.unsqueeze(0), gold, torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(((log_z - path_score([1, 2, 0])) / 3).item(), rel=1e-5)
    # Rows without words (a window with no word start) are left out, not an error.
    empty = torch.zeros(1, 3, dtype=torch.bool)
    both = head.loss(torch.cat([EMISSIONS.unsqueeze(0), EMISSIONS.unsqueeze(0)]), torch.cat([gold, gold]),
                     torch.cat([torch.ones(1, 3, dtype=torch.bool), empty]))
    assert both.item() == pytest.approx(loss.item(), rel=1e-5)


# --- parts on a tiny BERT ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from blurbkit.models.loading import load_encoder, load_tokenizer
    from blurbkit.models.tiny import build_tiny_bert

    path = build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")
    tokenizer = load_tokenizer(path)
    tokenizer.add_special_tokens({"additional_special_tokens": list(MARKERS)})
    encoder = load_encoder(path)
    encoder.resize_token_embeddings(len(tokenizer))
    return encoder.eval(), tokenizer


def _hidden(tiny, batch):
    encoder, _ = tiny
    with torch.no_grad():
        return encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


def _batches(tiny, transform, records):
    """The batch of all records, and the first record's batch alone (no padding)."""
    _, tokenizer = tiny
    examples = TRANSFORMS.get(transform)(records, TransformContext(tokenizer, 64))
    return collate(examples, tokenizer.pad_token_id), collate(examples[:1], tokenizer.pad_token_id)


SENTENCES = [
    {"tokens": ["Aspirin", "reduces", "fever"], "tags": ["B-Chemical", "O", "O"]},
    {"tokens": ["Low", "doses", "of", "acetylsalicylic", "acid", "were", "given", "to", "patients", "."],
     "tags": ["O"] * 10},
]


@pytest.mark.parametrize("head_name", ["softmax", "crf", "bilstm", "bilstm_crf"])
def test_token_heads_shapes_and_masking(tiny, head_name):
    torch.manual_seed(0)
    full, alone = _batches(tiny, "tokens", SENTENCES)
    featurizer = FEATURIZERS.get("first_subword")(32)
    head = HEADS.get(head_name)(featurizer.out_size, 5, dropout=0.1, lstm_hidden=8).eval()
    outputs = []
    for batch in (full, alone):
        features, mask = featurizer(_hidden(tiny, batch), batch)
        with torch.no_grad():
            scores = head(features, mask)
        assert scores.shape == (*mask.shape, 5)
        outputs.append((scores, mask, head.predict(scores, mask)))
    (scores, mask, paths), (alone_scores, _, alone_paths) = outputs
    assert [len(p) for p in paths] == [3, 10]
    assert all(0 <= tag < 5 for path in paths for tag in path)
    # The short sentence padded to ten words scores and decodes as it does alone.
    torch.testing.assert_close(scores[0, :3], alone_scores[0], atol=1e-5, rtol=1e-4)
    assert paths[0] == alone_paths[0]
    labels = torch.zeros(mask.shape, dtype=torch.long)
    head.train()
    features, mask = featurizer(_hidden(tiny, full), full)
    loss = head.loss(head(features, mask), labels, mask)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0


RELATIONS = [
    {"id": "r0", "text": "@DRUG$ increases the effect of @DRUG$.", "label": "DDI-effect",
     "entities": [{"start": 0, "end": 6, "type": "DRUG"}, {"start": 31, "end": 37, "type": "DRUG"}],
     "original": {"text": "Aspirin increases the effect of warfarin.",
                  "entities": [{"start": 0, "end": 7, "type": "DRUG"}, {"start": 32, "end": 40, "type": "DRUG"}]}},
    {"id": "r1", "text": "No interaction was seen between @DRUG$ and @DRUG$ in the long study of many patients.",
     "label": "DDI-false",
     "entities": [{"start": 32, "end": 38, "type": "DRUG"}, {"start": 43, "end": 49, "type": "DRUG"}],
     "original": {"text": "No interaction was seen between ibuprofen and digoxin in the long study of many patients.",
                  "entities": [{"start": 32, "end": 41, "type": "DRUG"}, {"start": 46, "end": 53, "type": "DRUG"}]}},
]
SEQUENCE_FEATURIZERS = ["cls", "cls_pooler", "mean", "mention_pool", "entity_start"] + [
    f"sll_{kind}{suffix}" for kind in ("attention", "lstm", "bilstm") for suffix in ("", "_nocls")
]


@pytest.mark.parametrize("transform", ["text", "markers", "original"])
@pytest.mark.parametrize("name", SEQUENCE_FEATURIZERS)
def test_sequence_featurizers_shapes_and_masking(tiny, transform, name):
    torch.manual_seed(0)
    full, alone = _batches(tiny, transform, RELATIONS)
    assert full["entity_spans"].shape == (2, 2, 2)
    featurizer = FEATURIZERS.get(name)(32, lstm_hidden=16).eval()
    with torch.no_grad():
        features, mask = featurizer(_hidden(tiny, full), full)
        alone_features, _ = featurizer(_hidden(tiny, alone), alone)
    assert mask is None and features.shape == (2, featurizer.out_size)
    torch.testing.assert_close(features[0], alone_features[0], atol=1e-5, rtol=1e-4)
    head = HEADS.get("softmax")(featurizer.out_size, 5).eval()
    assert len(head.predict(head(features))) == 2


def test_mean_pooling_is_the_mean_of_the_unpadded_positions(tiny):
    full, _ = _batches(tiny, "text", RELATIONS)
    hidden = _hidden(tiny, full)
    features, _ = FEATURIZERS.get("mean")(32)(hidden, full)
    short = int(full["attention_mask"][0].sum())
    assert short < full["input_ids"].size(1)  # the first record is padded in this batch
    torch.testing.assert_close(features[0], hidden[0, :short].mean(0))
    torch.testing.assert_close(features[1], hidden[1].mean(0))


def test_attention_weights_cover_only_the_text_tokens(tiny):
    full, _ = _batches(tiny, "text", RELATIONS)
    featurizer = FEATURIZERS.get("sll_attention")(32)
    featurizer(_hidden(tiny, full), full)
    weights = featurizer.last_attention
    assert weights.shape == full["input_ids"].shape
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    _, tokenizer = tiny
    special = (full["input_ids"] == tokenizer.cls_token_id) | (full["input_ids"] == tokenizer.sep_token_id)
    assert (weights[special | (full["attention_mask"] == 0)] == 0).all()


def test_marker_input_and_spans(tiny):
    _, tokenizer = tiny
    text, entities = mark_entities("Aspirin increases warfarin", RELATIONS[0]["original"]["entities"][:1] + [
        {"start": 18, "end": 26, "type": "DRUG"}])
    assert text == " [E1] Aspirin [/E1]  increases  [E2] warfarin [/E2] "
    assert [text[e["start"]:e["end"]] for e in entities] == ["[E1] Aspirin [/E1]", "[E2] warfarin [/E2]"]
    same, _ = mark_entities("x", [{"start": 0, "end": 1}, {"start": 0, "end": 1}])
    assert same.split() == ["[E1]", "[E2]", "x", "[/E2]", "[/E1]"]
    full, _ = _batches(tiny, "markers", RELATIONS)
    ids = full["input_ids"]
    for row in range(2):
        (s1, e1), (s2, e2) = full["entity_spans"][row].tolist()
        assert tokenizer.convert_ids_to_tokens([ids[row, s1], ids[row, e1 - 1], ids[row, s2], ids[row, e2 - 1]]) == list(MARKERS)


def test_unsupported_inputs_and_parts_are_refused_before_training(tiny):
    _, tokenizer = tiny
    masked_only = [{k: v for k, v in r.items() if k != "original"} for r in RELATIONS]
    for transform in ("markers", "original"):
        with pytest.raises(BlurbkitError, match="ddi, aimed"):
            TRANSFORMS.get(transform)(masked_only, TransformContext(tokenizer, 64))

    def recipe(task, **parts):
        base = {"transform": "text", "featurizer": "cls", "head": "softmax"} | parts
        return ModelRecipe(dataset="x", task_type=task, labels=["a", "b"], max_length=64, **base)

    with pytest.raises(BlurbkitError, match="head 'crf' does not apply to relation"):
        check_parts_apply(recipe("relation", head="crf"), get_task_type("relation"))
    with pytest.raises(BlurbkitError, match="transform 'markers' does not apply to ner"):
        check_parts_apply(recipe("ner", transform="markers", featurizer="first_subword"), get_task_type("ner"))
    with pytest.raises(BlurbkitError, match="featurizer 'sll_attention' does not apply to ner"):
        check_parts_apply(recipe("ner", transform="tokens", featurizer="sll_attention"), get_task_type("ner"))
    check_parts_apply(recipe("ner", transform="tokens", featurizer="first_subword", head="bilstm_crf"), get_task_type("ner"))


def test_cls_pooler_starts_from_the_checkpoints_pooler_and_says_when_there_is_none(tmp_path):
    from transformers import BertConfig, BertModel

    from blurbkit.models.build import build_model, make_recipe
    from blurbkit.models.tiny import build_tiny_bert
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset("gad")
    codec = spec.task.codec(spec, [{"id": "a", "text": "@GENE$ and @DISEASE$ .", "label": "1"},
                                   {"id": "b", "text": "@GENE$ or @DISEASE$ .", "label": "0"}])
    recipe = make_recipe(spec, codec, 32, featurizer="cls_pooler")
    without = build_tiny_bert(tmp_path / "plain")  # saved without a pooler
    model, _ = build_model(recipe, without)
    assert model.featurizer.source == "new"
    assert model.featurizer.notes() == ["the encoder's checkpoint has no pooler: cls_pooler's layer starts from random values"]
    config = BertConfig.from_pretrained(without)
    torch.manual_seed(3)
    BertModel(config).save_pretrained(tmp_path / "pooled", safe_serialization=True)  # with one
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (without / name).exists():
            (tmp_path / "pooled" / name).write_bytes((without / name).read_bytes())
    model, _ = build_model(recipe, tmp_path / "pooled")
    saved = BertModel.from_pretrained(tmp_path / "pooled").pooler.dense
    assert model.featurizer.source == "pretrained" and model.featurizer.notes() == []
    assert torch.equal(model.featurizer.dense.weight, saved.weight) and torch.equal(model.featurizer.dense.bias, saved.bias)
