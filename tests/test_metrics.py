"""The official metrics, each checked against an independent implementation and hand-worked cases."""

from __future__ import annotations

import random

import pytest
from scipy.stats import pearsonr
from seqeval.metrics.sequence_labeling import f1_score as seqeval_f1
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as seqeval_prfs
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from blurbkit.errors import BlurbkitError
from blurbkit.metrics import (
    METRICS,
    accuracy,
    chunks,
    doc_key,
    entity_f1,
    hoc_micro_f1,
    pearson,
    pico_macro_f1,
    relation_micro_f1,
)
from blurbkit.tagging import tag_problem
from blurbkit.tasks.blurb_score import blurb_score
from blurbkit.tasks.types import TASK_TYPES

approx = pytest.approx


def random_tags(rng: random.Random, prefixes: str, types: tuple[str, ...], n: int) -> list[str]:
    # Unconstrained sequences on purpose: I- after O, type switches, E- without B- ... all occur.
    return ["O" if rng.random() < 0.4 else f"{rng.choice(prefixes)}-{rng.choice(types)}" for _ in range(n)]


def random_corpus(seed: int, prefixes: str, types=("X", "Y")) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    lengths = [rng.randint(0, 12) for _ in range(40)]
    gold = [random_tags(rng, prefixes, types, n) for n in lengths]
    pred = [random_tags(rng, prefixes, types, n) for n in lengths]
    return gold, pred


def test_every_task_type_metric_is_registered():
    assert {TASK_TYPES.get(name).metric for name in TASK_TYPES.names()} <= set(METRICS.names())


# ---- entity F1 -------------------------------------------------------------------------------


def test_conlleval_chunking_rules():
    # I- after O starts a chunk; I-Y after I-X starts a new one; B- always starts one.
    assert chunks(["O", "I-X", "I-X", "O"]) == [("X", 1, 3)]
    assert chunks(["B-X", "I-Y", "I-Y"]) == [("X", 0, 1), ("Y", 1, 3)]
    assert chunks(["B-X", "B-X", "I-X"]) == [("X", 0, 1), ("X", 1, 3)]
    assert chunks(["I-X"]) == [("X", 0, 1)]
    # IO: runs of one type are one chunk.
    assert chunks(["I-PAR", "I-PAR", "I-INT", "O", "I-PAR"], "io") == [
        ("PAR", 0, 2),
        ("INT", 2, 3),
        ("PAR", 4, 5),
    ]
    # IOBES and BIOUL (L/U read as E/S).
    assert chunks(["B-X", "E-X", "S-X", "I-X", "E-X"], "iobes") == [("X", 0, 2), ("X", 2, 3), ("X", 3, 5)]
    assert chunks(["B-X", "L-X", "U-X", "O"], "bioul") == [("X", 0, 2), ("X", 2, 3)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("scheme", "prefixes"), [("iob2", "BI"), ("io", "I"), ("iobes", "BIES")])
def test_chunks_and_entity_f1_match_seqeval(seed, scheme, prefixes):
    gold, pred = random_corpus(seed, prefixes)
    for tags in gold:
        assert [(t, s, e - 1) for t, s, e in chunks(tags, scheme)] == get_entities(tags)
    p, r, f, _ = seqeval_prfs(gold, pred, average="micro", zero_division=0)
    result = entity_f1(gold, pred, scheme=scheme)
    assert (result["precision"], result["recall"], result["score"]) == approx((p, r, f))


def test_bioul_equals_iobes():
    gold, pred = random_corpus(7, "BIES")
    to_bioul = str.maketrans({"E": "L", "S": "U"})
    gold_b = [[t.translate(to_bioul) if t != "O" else t for t in s] for s in gold]
    pred_b = [[t.translate(to_bioul) if t != "O" else t for t in s] for s in pred]
    assert entity_f1(gold_b, pred_b, scheme="bioul") == entity_f1(gold, pred, scheme="iobes")


def test_sentences_never_share_a_chunk():
    # An entity ending one sentence and one starting the next are two spans, as in conlleval.
    result = entity_f1([["I-X"], ["I-X"]], [["I-X"], ["I-X"]])
    assert (result["n_gold"], result["tp"]) == (2, 2)


def test_strict_vs_lenient_by_hand():
    gold = [["B-X", "I-X", "O", "B-X", "O", "B-Y"]]
    pred = [["B-X", "O", "O", "B-X", "O", "B-X"]]
    # gold spans: X[0,2) X[3,4) Y[5,6); predicted: X[0,1) X[3,4) X[5,6)
    # strict: only X[3,4) matches -> P = 1/3, R = 1/3, F1 = 1/3.
    # lenient: X[0,1) overlaps gold X[0,2): correct; X[3,4) correct; X[5,6) overlaps only gold Y (wrong type).
    #   P = 2 correct predictions / 3 predicted; R = 2 gold spans overlapped (X[0,2), X[3,4)) / 3 gold.
    result = entity_f1(gold, pred)
    assert (result["precision"], result["recall"], result["score"]) == approx((1 / 3, 1 / 3, 1 / 3))
    assert result["lenient"]["precision"] == approx(2 / 3)
    assert result["lenient"]["recall"] == approx(2 / 3)
    assert result["lenient"]["score"] == approx(2 / 3)


def test_lenient_counts_precision_and_recall_on_their_own_spans():
    # One long prediction X[0,5) covers the two gold spans X[0,2) and X[3,5).
    # strict: 0 hits -> 0. lenient: P = 1/1 (the prediction overlaps a gold X), R = 2/2 (both gold overlapped).
    result = entity_f1([["B-X", "I-X", "O", "B-X", "I-X"]], [["B-X", "I-X", "I-X", "I-X", "I-X"]])
    assert result["score"] == 0.0
    assert (result["lenient"]["precision"], result["lenient"]["recall"]) == (1.0, 1.0)


def test_conlleval_i_after_o_is_a_chunk():
    # Predicted "O I-X I-X" is the chunk X[1,3): it matches gold B-X I-X at 1..2 exactly.
    result = entity_f1([["O", "B-X", "I-X"]], [["O", "I-X", "I-X"]])
    assert result["score"] == 1.0
    # Gold B-X I-X, predicted B-X I-Y: X[0,1) and Y[1,2) - both wrong, gold X[0,2) missed.
    result = entity_f1([["B-X", "I-X"]], [["B-X", "I-Y"]])
    assert (result["tp"], result["n_pred"], result["n_gold"]) == (0, 2, 1)


def test_no_predictions_and_no_gold_give_zero_not_an_error():
    assert entity_f1([["O"]], [["O"]])["score"] == 0.0
    assert entity_f1([["B-X"]], [["O"]])["precision"] == 0.0


def test_tag_problems():
    assert tag_problem("O", "iob2") is None
    assert tag_problem("I-X", "io", {"X"}) is None
    assert "not O or PREFIX-TYPE" in tag_problem("X", "iob2")
    assert "not in the IOB2 scheme" in tag_problem("E-X", "iob2")
    assert "not in the IO scheme" in tag_problem("B-X", "io")
    assert "unknown entity type" in tag_problem("B-Z", "iob2", {"X"})
    with pytest.raises(ValueError, match="not O or PREFIX-TYPE"):
        chunks(["B"])


# ---- PICO ------------------------------------------------------------------------------------


def test_pico_by_hand():
    gold = [["I-PAR", "I-PAR", "O", "I-INT", "I-OUT", "I-OUT"]]
    pred = [["I-PAR", "O", "O", "I-INT", "I-INT", "I-OUT"]]
    # PAR: tp 1, pred 1, gold 2 -> P 1, R 1/2, F1 2/3
    # INT: tp 1, pred 2, gold 1 -> P 1/2, R 1, F1 2/3
    # OUT: tp 1, pred 1, gold 2 -> P 1, R 1/2, F1 2/3
    # macro F1 = 2/3; macro P = (1 + 1/2 + 1)/3 = 5/6; macro R = (1/2 + 1 + 1/2)/3 = 2/3
    result = pico_macro_f1(gold, pred)
    assert result["score"] == approx(2 / 3)
    # Spans: PAR gold [0,2) pred [0,1) -> 0; INT gold [3,4) pred [3,5) -> 0; OUT gold [4,6) pred [5,6) -> 0.
    assert result["span_macro_f1"] == 0.0
    assert (result["precision"], result["recall"]) == approx((5 / 6, 2 / 3))
    assert result["per_element"]["INT"]["precision"] == approx(1 / 2)
    assert result["n_words"] == 6


def test_pico_b_tags_count_as_element_words():
    result = pico_macro_f1([["I-PAR", "I-PAR"]], [["B-PAR", "I-PAR"]])
    assert result["per_element"]["PAR"]["f1"] == 1.0
    # INT and OUT have no gold and no predicted words: F1 0 each, so the mean is 1/3.
    assert result["score"] == approx(1 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_pico_matches_sklearn(seed):
    gold, pred = random_corpus(seed, "IB", ("PAR", "INT", "OUT"))
    words = lambda seqs: [t.partition("-")[2] or "O" for s in seqs for t in s]  # noqa: E731
    labels = ["PAR", "INT", "OUT"]
    p, r, f, _ = precision_recall_fscore_support(words(gold), words(pred), labels=labels, zero_division=0)
    result = pico_macro_f1(gold, pred)
    for i, element in enumerate(labels):
        per = result["per_element"][element]
        assert (per["precision"], per["recall"], per["f1"]) == approx((p[i], r[i], f[i]))
    macro = f1_score(words(gold), words(pred), labels=labels, average="macro", zero_division=0)
    assert result["score"] == approx(macro)
    # The span-level variant (LinkBERT's): seqeval's per-type F1, averaged over the three elements.
    assert result["span_macro_f1"] == approx(seqeval_f1(gold, pred, average="macro", zero_division=0))


# ---- relations, accuracy ---------------------------------------------------------------------


def test_relation_negative_class_never_a_hit():
    gold = ["false", "false", "CPR:3", "CPR:3", "CPR:4"]
    pred = ["false", "CPR:3", "false", "CPR:4", "CPR:4"]
    # item 1: gold-negative, predicted negative -> nothing (no true positive for "false").
    # item 2: gold false, pred CPR:3 -> FP.   item 3: gold CPR:3, pred false -> FN.
    # item 4: gold CPR:3, pred CPR:4 -> FP and FN.   item 5: CPR:4 / CPR:4 -> TP.
    # tp 1, predicted positives 3, gold positives 3 -> P = R = F1 = 1/3.
    result = relation_micro_f1(gold, pred, negative_label="false")
    assert (result["tp"], result["n_pred"], result["n_gold"]) == (1, 3, 3)
    assert result["score"] == approx(1 / 3)
    # Counting the negative class too would give accuracy 2/5 instead.
    assert relation_micro_f1(gold, pred, negative_label=None)["score"] == approx(2 / 5)


@pytest.mark.parametrize("seed", range(5))
def test_relation_matches_sklearn(seed):
    rng = random.Random(seed)
    labels = ["DDI-false", "DDI-mechanism", "DDI-effect", "DDI-advise", "DDI-int"]
    gold = rng.choices(labels, weights=[6, 1, 1, 1, 1], k=200)
    pred = rng.choices(labels, weights=[6, 1, 1, 1, 1], k=200)
    p, r, f, _ = precision_recall_fscore_support(
        gold, pred, labels=labels[1:], average="micro", zero_division=0
    )
    result = relation_micro_f1(gold, pred, negative_label="DDI-false")
    assert (result["precision"], result["recall"], result["score"]) == approx((p, r, f))


def test_binary_relation_is_f1_of_the_positive_class():
    rng = random.Random(3)
    gold = rng.choices(["0", "1"], k=100)
    pred = rng.choices(["0", "1"], k=100)
    assert relation_micro_f1(gold, pred, negative_label="0")["score"] == approx(
        f1_score(gold, pred, pos_label="1")
    )


def test_accuracy_matches_sklearn():
    rng = random.Random(4)
    gold = rng.choices(["yes", "no", "maybe"], k=50)
    pred = rng.choices(["yes", "no", "maybe"], k=50)
    assert accuracy(gold, pred)["score"] == approx(accuracy_score(gold, pred))


# ---- Pearson ---------------------------------------------------------------------------------


def test_pearson_matches_scipy():
    rng = random.Random(5)
    gold = [rng.uniform(0, 4) for _ in range(20)]
    pred = [g + rng.gauss(0, 1) for g in gold]
    assert pearson(gold, pred)["score"] == approx(pearsonr(gold, pred)[0], abs=1e-12)


@pytest.mark.parametrize("scale", [1e160, 1e-200])
def test_pearson_of_a_diverged_head_is_its_correlation_not_zero_or_undefined(scale):
    rng = random.Random(6)
    gold = [rng.uniform(0, 4) for _ in range(20)]
    pred = [g + rng.gauss(0, 1) for g in gold]
    expected = pearson(gold, pred)["score"]
    assert pearson(gold, [p * scale for p in pred])["score"] == approx(expected, abs=1e-12)
    # One huge value: the sums would overflow; the correlation is that of any single spike.
    assert pearson(gold, [0.0] * 19 + [1e308])["score"] == approx(pearsonr(gold, [0.0] * 19 + [1.0])[0], abs=1e-12)


def test_pearson_constant_prediction_is_zero_and_flagged():
    result = pearson([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert (result["score"], result["undefined"]) == (0.0, True)
    with pytest.raises(ValueError, match="at least 2"):
        pearson([1.0], [1.0])


# ---- HoC -------------------------------------------------------------------------------------


def test_hoc_sentence_ids_merge_by_union():
    assert doc_key("22239943_s3") == "22239943"
    assert doc_key("22239943") == "22239943"
    gold = {"A_s0": ["a"], "A_s1": ["b"], "B": []}
    pred = {"A_s0": ["a", "c"], "A_s1": [], "B_s0": ["b"], "B_s4": ["b"]}
    # Abstract A: gold {a, b}, predicted {a, c} -> tp 1 (a), fp 1 (c), fn 1 (b).
    # Abstract B: gold {}, predicted {b} (two sentences, union counts once) -> fp 1.
    # tp 1, predicted cells 3, gold cells 2 -> P 1/3, R 1/2, F1 2/5.
    result = hoc_micro_f1(gold, pred)
    assert (result["tp"], result["n_pred"], result["n_gold"], result["n_docs"]) == (1, 3, 2, 2)
    assert (result["precision"], result["recall"], result["score"]) == approx((1 / 3, 1 / 2, 2 / 5))


def test_hoc_matches_sklearn_micro_over_cells():
    rng = random.Random(6)
    docs = [str(1000 + i) for i in range(30)]
    gold = {d: rng.sample(range(10), rng.randint(0, 3)) for d in docs}
    pred = {d: rng.sample(range(10), rng.randint(0, 3)) for d in docs}
    binarizer = MultiLabelBinarizer(classes=list(range(10)))
    y_true = binarizer.fit_transform([gold[d] for d in docs])
    y_pred = binarizer.transform([pred[d] for d in docs])
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    result = hoc_micro_f1(gold, pred)
    assert (result["precision"], result["recall"], result["score"]) == approx((p, r, f))


# ---- BLURB score -----------------------------------------------------------------------------

# SPEC.md §7, in datasets.toml order: bc5chem bc5disease ncbi_disease bc2gm jnlpba ebm_pico chemprot
# ddi gad biosses hoc pubmedqa bioasq.
ORDER = [
    "bc5chem",
    "bc5disease",
    "ncbi_disease",
    "bc2gm",
    "jnlpba",
    "ebm_pico",
    "chemprot",
    "ddi",
    "gad",
    "biosses",
    "hoc",
    "pubmedqa",
    "bioasq",
]
COLUMNS = {
    "BERT-uncased": (
        [89.25, 81.44, 85.67, 80.90, 78.63, 72.34, 71.86, 80.04, 77.72, 82.68, 80.20, 51.62, 70.36],
        75.99,
    ),
    "BioBERT": (
        [92.85, 84.70, 89.13, 83.82, 79.35, 73.18, 76.14, 80.88, 80.94, 89.52, 81.54, 60.24, 84.14],
        80.29,
    ),
    "PubMedBERT": (
        [93.33, 85.62, 87.82, 84.52, 80.06, 73.38, 77.24, 82.36, 82.34, 92.30, 82.32, 55.84, 87.56],
        81.10,
    ),
}


@pytest.mark.parametrize("model", COLUMNS)
def test_blurb_score_reproduces_the_paper(model):
    values, expected = COLUMNS[model]
    result = blurb_score(dict(zip(ORDER, values, strict=True)))
    # Plain rounding of the unrounded mean to two decimals; no intermediate rounding needed.
    assert round(result["score"], 2) == expected
    assert len(result["groups"]) == 6


def test_blurb_score_group_averages_by_hand():
    values, _ = COLUMNS["BERT-uncased"]
    groups = blurb_score(dict(zip(ORDER, values, strict=True)))["groups"]
    # NER (89.25+81.44+85.67+80.90+78.63)/5 = 83.178; RE (71.86+80.04+77.72)/3 = 76.54; QA (51.62+70.36)/2 = 60.99
    assert groups["NER"] == approx(83.178)
    assert groups["Relation Extraction"] == approx(76.54)
    assert groups["Question Answering"] == approx(60.99)


def test_blurb_score_errors():
    values, _ = COLUMNS["PubMedBERT"]
    scores = dict(zip(ORDER, values, strict=True))
    with pytest.raises(BlurbkitError, match="missing BLURB datasets: bioasq"):
        blurb_score({k: v for k, v in scores.items() if k != "bioasq"})
    with pytest.raises(BlurbkitError, match="unknown BLURB dataset 'aimed'"):
        blurb_score({**scores, "aimed": 50.0})
    with pytest.raises(BlurbkitError, match="given twice"):
        blurb_score({**scores, "BC5-chem": 93.33})
    with pytest.raises(BlurbkitError, match="percentages"):
        blurb_score({k: v / 100 for k, v in scores.items()})


def test_seed_summaries_use_the_sample_std_and_a_single_seed_has_none():
    from blurbkit.metrics.seeds import mean_std, sample_std

    mean, std = mean_std([70.0, 72.0, 77.0])
    assert mean == pytest.approx(73.0) and std == pytest.approx((((3 ** 2) + 1 + 16) / 2) ** 0.5)  # n - 1, not n
    assert mean_std(iter([55.2])) == (55.2, 0.0) and sample_std([1.0, 1.0]) == 0.0
