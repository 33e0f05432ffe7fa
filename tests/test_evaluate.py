"""score_predictions, prediction files (write -> read round trip), `blurbkit evaluate` and its errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as seqeval_prfs
from sklearn.metrics import precision_recall_fscore_support

import blurbkit.scoring
from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.scoring import read_prediction_file, score_predictions, write_predictions
from blurbkit.tasks.registry import blurb_datasets, get_dataset

NER = [
    {
        "id": "s0",
        "doc_id": "d0",
        "tokens": ["Aspirin", "and", "ibuprofen", "."],
        "tags": ["B-Chemical", "O", "B-Chemical", "O"],
    },
    {"id": "s1", "doc_id": "d0", "tokens": ["No", "drug"], "tags": ["O", "O"]},
    {
        "id": "s2",
        "doc_id": "d1",
        "tokens": ["sodium", "chloride", "works"],
        "tags": ["B-Chemical", "I-Chemical", "O"],
    },
]
PICO = [
    {
        "id": "p0",
        "doc_id": "1",
        "tokens": ["Adults", "with", "asthma", "took", "budesonide"],
        "tags": ["I-PAR", "I-PAR", "I-PAR", "O", "I-INT"],
    },
    {"id": "p1", "doc_id": "1", "tokens": ["FEV1", "improved"], "tags": ["I-OUT", "O"]},
]
CHEMPROT = [
    {"id": f"c{i}", "text": "@CHEMICAL$ and @GENE$", "label": label, "entities": []}
    for i, label in enumerate(["false", "CPR:3", "CPR:4", "false"])
]
GAD = [
    {"id": str(i), "text": "@GENE$ in @DISEASE$", "label": label, "entities": []}
    for i, label in enumerate("0110")
]
BIOSSES = [
    {"id": f"b{i}", "text_a": "a", "text_b": "b", "score": score}
    for i, score in enumerate([0.0, 1.5, 3.2, 4.0])
]
HOC_LABELS = get_dataset("hoc").labels
HOC = [
    {"id": "111", "text": "x", "labels": [HOC_LABELS[0], HOC_LABELS[7]]},
    {"id": "222", "text": "y", "labels": []},
]
QA = [
    {"id": f"q{i}", "question": "?", "context": "c", "label": label}
    for i, label in enumerate(["yes", "no", "maybe"])
]

GOLD = {
    "bc5chem": NER,
    "ebm_pico": PICO,
    "chemprot": CHEMPROT,
    "gad": GAD,
    "biosses": BIOSSES,
    "hoc": HOC,
    "pubmedqa": QA,
}


def perfect(name: str):
    records = GOLD[name]
    spec = get_dataset(name)
    if spec.task_type in ("ner", "pico"):
        return [list(r["tags"]) for r in records]
    if spec.task_type == "similarity":
        return {r["id"]: r["score"] for r in records}
    if spec.task_type == "doc_classification":
        return {r["id"]: list(r["labels"]) for r in records}
    return {r["id"]: r["label"] for r in records}


# Imperfect predictions with their expected scores, worked out by hand.
IMPERFECT = {
    # spans gold: s0 [0,1) [2,3); s2 [0,2). predicted: s0 [0,1) only; s2 [0,1) (boundary wrong) -> tp 1 of 2 pred, 3 gold.
    # P 1/2, R 1/3, F1 = 2PR/(P+R) = 2/5.
    "bc5chem": ([["B-Chemical", "O", "O", "O"], ["O", "O"], ["B-Chemical", "O", "O"]], 2 / 5),
    # PAR: gold 3 words, pred 2 (both right) -> P 1, R 2/3, F1 4/5; INT perfect 1; OUT predicted nothing -> 0.
    # mean (4/5 + 1 + 0) / 3 = 3/5.
    "ebm_pico": ([["O", "I-PAR", "I-PAR", "O", "I-INT"], ["O", "O"]], 3 / 5),
    # c0 false->CPR:3 (FP), c1 CPR:3 ok (TP), c2 CPR:4->false (FN), c3 ok. P 1/2, R 1/2, F1 1/2.
    "chemprot": ({"c0": "CPR:3", "c1": "CPR:3", "c2": "false", "c3": "false"}, 1 / 2),
    # positive class 1: gold {1, 2}, predicted {1, 3} -> P 1/2, R 1/2 -> F1 1/2. Labels as JSON numbers too.
    "gad": ({"0": 0, "1": 1, "2": "0", "3": 1}, 1 / 2),
    # pred = 2 * gold + 1 is a perfect linear relation: r = 1.
    "biosses": ({"b0": 1.0, "b1": 4.0, "b2": 7.4, "b3": 9.0}, 1.0),
    # Abstract 111 by sentences: s0 -> {0}, s1 -> {2} ; 222 -> {}. cells: tp 1 (label 0), pred 2, gold 2 -> 1/2.
    "hoc": ({"111_s0": [0], "111_s1": [HOC_LABELS[2]], "222": []}, 1 / 2),
    "pubmedqa": ({"q0": "yes", "q1": "yes", "q2": "maybe"}, 2 / 3),
}


@pytest.mark.parametrize("name", GOLD)
def test_perfect_predictions_score_one(name):
    result = score_predictions(get_dataset(name), GOLD[name], perfect(name), split="test")
    assert result["score"] == pytest.approx(1.0)
    assert (result["dataset"], result["split"], result["metric"], result["n"]) == (
        name,
        "test",
        get_dataset(name).metric,
        len(GOLD[name]),
    )


@pytest.mark.parametrize("name", GOLD)
def test_write_then_read_reproduces_the_score(name, tmp_path):
    spec, gold = get_dataset(name), GOLD[name]
    predictions, expected = IMPERFECT[name]
    scored = score_predictions(spec, gold, predictions)
    assert scored["score"] == pytest.approx(expected)
    path = write_predictions(spec, gold, predictions, tmp_path / "pred.txt")
    again = score_predictions(spec, gold, read_prediction_file(spec, gold, path))
    assert again == scored


def test_ner_result_has_strict_and_lenient(tmp_path):
    predictions, _ = IMPERFECT["bc5chem"]
    result = score_predictions(get_dataset("bc5chem"), NER, predictions)
    # lenient: both predictions overlap a gold span (P 2/2); gold overlapped: s0 first, s2 -> 2 of 3.
    assert result["lenient"]["precision"] == 1.0
    assert result["lenient"]["recall"] == pytest.approx(2 / 3)
    assert set(result) >= {"precision", "recall", "tp", "n_gold", "n_pred", "per_type"}


def test_pico_result_has_per_element_scores():
    predictions, _ = IMPERFECT["ebm_pico"]
    result = score_predictions(get_dataset("ebm_pico"), PICO, predictions)
    assert result["per_element"]["PAR"]["f1"] == pytest.approx(4 / 5)
    assert result["per_element"]["OUT"]["f1"] == 0.0


def test_in_memory_errors_name_the_record():
    spec = get_dataset("bc5chem")
    with pytest.raises(BlurbkitError, match="record s1: 3 predicted tags for 2 tokens"):
        score_predictions(spec, NER, [["O"] * 4, ["O"] * 3, ["O"] * 3])
    with pytest.raises(BlurbkitError, match="2 predicted tag sequences for 3 gold sentences"):
        score_predictions(spec, NER, [["O"] * 4, ["O"] * 2])
    with pytest.raises(BlurbkitError, match=r"record s2, token 1: .*unknown entity type 'Gene'"):
        score_predictions(spec, NER, [["O"] * 4, ["O"] * 2, ["B-Gene", "O", "O"]])
    with pytest.raises(BlurbkitError, match="no prediction for 1 of 4 gold ids"):
        score_predictions(get_dataset("chemprot"), CHEMPROT, {"c0": "false", "c1": "false", "c2": "false"})
    with pytest.raises(BlurbkitError, match="unknown id 'c9'"):
        score_predictions(get_dataset("chemprot"), CHEMPROT, {**perfect("chemprot"), "c9": "false"})


def test_alternative_schemes_are_opt_in():
    spec = get_dataset("bc5chem")
    iobes = [["S-Chemical", "O", "S-Chemical", "O"], ["O", "O"], ["B-Chemical", "E-Chemical", "O"]]
    with pytest.raises(BlurbkitError, match="prefix S- is not in the IOB2 scheme"):
        score_predictions(spec, NER, iobes)
    assert score_predictions(spec, NER, iobes, scheme="iobes")["score"] == 1.0
    # IO tags are legal IOB2 predictions (conlleval: I- after O starts a chunk).
    io = [["I-Chemical", "O", "I-Chemical", "O"], ["O", "O"], ["I-Chemical", "I-Chemical", "O"]]
    assert score_predictions(spec, NER, io)["score"] == 1.0


# ---- the command line, with a stand-in for data/load.py ----------------------------------------


@pytest.fixture
def fake_gold(monkeypatch):
    """`blurbkit evaluate` reads gold through evaluate.load_gold (load_split): serve the records above."""
    monkeypatch.setattr(blurbkit.scoring, "load_gold", lambda dataset, split, data, options: GOLD[dataset])


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_one_json_object(fake_gold, tmp_path, capsys):
    predictions, expected = IMPERFECT["bc5chem"]
    path = write_predictions(get_dataset("bc5chem"), NER, predictions, tmp_path / "p.tsv")
    code, out, _ = run_cli(capsys, "--dataset", "bc5chem", "--split", "test", "--predictions", str(path))
    result = json.loads(out)
    assert code == 0 and result["score"] == pytest.approx(expected) and result["split"] == "test"


def test_token_file_ignores_docstart_and_repeated_blank_lines(fake_gold, tmp_path, capsys):
    path = tmp_path / "p.txt"
    path.write_text(
        "-DOCSTART- (1)\n\n\nAdults\tI-PAR\nwith\tI-PAR\nasthma\tI-PAR\ntook\tO\nbudesonide\tB-INT\n\n\n\nFEV1\tI-OUT\nimproved\tO\n\n\n",
        encoding="utf-8",
    )
    code, out, _ = run_cli(capsys, "--dataset", "ebm_pico", "--predictions", str(path))
    assert code == 0 and json.loads(out)["score"] == 1.0


TOKEN_LINES = [
    "Aspirin\tB-Chemical",
    "and\tO",
    "ibuprofen\tB-Chemical",
    ".\tO",
    "",
    "No\tO",
    "drug\tO",
    "",
    "sodium\tB-Chemical",
    "chloride\tI-Chemical",
    "works\tO",
    "",
]


def edited(line: int, new: str | None) -> str:
    """TOKEN_LINES with line `line` (1-based) replaced (None: removed)."""
    lines = list(TOKEN_LINES)
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


BAD_TOKEN_FILES = {
    "three columns": (edited(2, "and\tNN\tO"), ":2: expected 2 tab-separated columns (token, tag), found 3"),
    "space not tab": (edited(2, "and O"), ":2: expected 2 tab-separated columns (token, tag), found 1"),
    "unknown type": (
        edited(3, "ibuprofen\tB-Gene"),
        ":3: sentence 1 (gold id s0), token 3: tag 'B-Gene': unknown entity type",
    ),
    "not a tag": (
        edited(3, "ibuprofen\tChemical"),
        ":3: sentence 1 (gold id s0), token 3: tag 'Chemical' is not O or PREFIX-TYPE",
    ),
    "not in scheme": (
        edited(3, "ibuprofen\tS-Chemical"),
        ":3: sentence 1 (gold id s0), token 3: tag 'S-Chemical': prefix S- is not in the IOB2 scheme",
    ),
    "token differs": (
        edited(7, "drugs\tO"),
        ":7: sentence 2 (gold id s1), token 2: token 'drugs' differs from gold 'drug'",
    ),
    "sentence short": (edited(7, None), ":7: sentence 2 (gold id s1) ends after 1 tokens; gold has 2"),
    "sentence long": (
        edited(8, "extra\tO"),
        ":8: sentence 2 (gold id s1), token 3: gold sentence has only 2 tokens",
    ),
    "extra sentence": (
        "\n".join([*TOKEN_LINES, "more\tO", ""]) + "\n",
        ":13: more sentences than the gold split's 3",
    ),
    "missing sentence": (
        "\n".join(TOKEN_LINES[:8]) + "\n",
        ": file ends after 2 sentences; the gold split has 3",
    ),
}


@pytest.mark.parametrize("case", BAD_TOKEN_FILES)
def test_bad_token_files(case, fake_gold, tmp_path, capsys):
    text, message = BAD_TOKEN_FILES[case]
    path = tmp_path / "pred.tsv"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "--dataset", "bc5chem", "--predictions", str(path))
    assert code == 2 and out == ""
    assert err == f"blurbkit: error: {path}{message}" + err[len(f"blurbkit: error: {path}{message}") :]
    assert err.count("\n") == 1 and "Traceback" not in err


def test_conlleval_legal_i_after_o_is_accepted(fake_gold, tmp_path, capsys):
    path = tmp_path / "pred.tsv"
    path.write_text(edited(3, "ibuprofen\tI-Chemical"), encoding="utf-8")
    code, out, _ = run_cli(capsys, "--dataset", "bc5chem", "--predictions", str(path))
    assert code == 0 and json.loads(out)["score"] == 1.0  # I-Chemical after O = the chunk [2,3), as gold


def jsonl(*objects: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


OK = [{"id": f"c{i}", "prediction": "false"} for i in range(4)]
BAD_JSONL_FILES = {
    "missing id": ("chemprot", jsonl(*OK[:3]), ": no prediction for 1 of 4 gold ids (first: c3)"),
    "extra id": ("chemprot", jsonl(*OK, {"id": "c9", "prediction": "false"}), ":5: unknown id 'c9'"),
    "duplicate id": ("chemprot", jsonl(*OK, OK[1]), ":5: duplicate id 'c1' (first on line 2)"),
    "unknown label": (
        "chemprot",
        jsonl(OK[0], {"id": "c1", "prediction": "CPR:7"}),
        ":2: id 'c1': unknown label 'CPR:7'",
    ),
    "label index": ("chemprot", jsonl({"id": "c0", "prediction": 2}), ":1: id 'c0': unknown label 2"),
    "bad json": ("chemprot", jsonl(OK[0], '{"id": "c1", '), ":2: not valid JSON"),
    "no prediction key": (
        "chemprot",
        jsonl({"id": "c0", "label": "false"}),
        ':1: expected a JSON object {"id": ..., "prediction": ...}',
    ),
    "score not number": (
        "biosses",
        jsonl({"id": "b0", "prediction": "high"}),
        ":1: id 'b0': prediction must be a finite number",
    ),
    "hoc index range": (
        "hoc",
        jsonl({"id": "111", "prediction": [10]}),
        ":1: id '111': label index 10 is out of range 0..9",
    ),
    "hoc not a list": (
        "hoc",
        jsonl({"id": "111", "prediction": "cellular energetics"}),
        ":1: id '111': prediction must be a list",
    ),
    "hoc unknown abstract": ("hoc", jsonl({"id": "333_s1", "prediction": []}), ":1: unknown id '333_s1'"),
}


@pytest.mark.parametrize("case", BAD_JSONL_FILES)
def test_bad_jsonl_files(case, fake_gold, tmp_path, capsys):
    dataset, text, message = BAD_JSONL_FILES[case]
    path = tmp_path / "pred.jsonl"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "--dataset", dataset, "--predictions", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"blurbkit: error: {path}{message}")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Aspirin\tB-Chemical\nand\tO\n\xff\tO\n", ":3: byte 0xff is not valid UTF-8"),
        (b"", ": file is empty"),
        (b"\n\n  \n", ": file is empty"),
        (None, ": file not found"),
    ],
)
def test_unreadable_files(content, message, fake_gold, tmp_path, capsys):
    path = tmp_path / "pred.tsv"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(capsys, "--dataset", "bc5chem", "--predictions", str(path))
    assert code == 2 and err.startswith(f"blurbkit: error: {path}{message}")


def test_public_api_is_callable_after_the_submodule_is_imported(fake_gold, tmp_path):
    import blurbkit

    predictions, expected = IMPERFECT["chemprot"]
    path = write_predictions(get_dataset("chemprot"), CHEMPROT, predictions, tmp_path / "p.jsonl")
    assert blurbkit.evaluate("chemprot", "test", path)["score"] == pytest.approx(expected)


def test_unknown_dataset_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "--dataset", "nope", "--predictions", "x")
    assert code == 2 and err.startswith("blurbkit: error: unknown dataset 'nope'")


# ---- the real gold splits (once load_split exists) ----------------------------------------------


@pytest.mark.parametrize("name", [spec.name for spec in blurb_datasets()])
def test_gold_test_split_as_predictions_scores_perfectly(name, shared_data, tmp_path):
    from blurbkit.data import load
    from blurbkit.scoring import evaluate

    spec = get_dataset(name)
    gold = load.load_split(name, "test", data=shared_data)
    if spec.task_type in ("ner", "pico"):
        predictions = [list(r["tags"]) for r in gold]
    elif spec.task_type == "similarity":
        predictions = {r["id"]: r["score"] for r in gold}
    elif spec.task_type == "doc_classification":
        # Sentence-level predictions where the gold has sentences: they must merge back to the abstract.
        predictions = {s["id"]: s["labels"] for r in gold for s in r.get("sentences") or [r]}
    else:
        predictions = {r["id"]: r["label"] for r in gold}
    path = write_predictions(spec, gold, predictions, tmp_path / "test.pred")
    result = evaluate(name, "test", path, data=shared_data)
    assert result["score"] == pytest.approx(1.0)
    assert result["n"] == len(gold)
    if spec.task_type == "ner":
        assert result["lenient"]["score"] == pytest.approx(1.0)
    Path(path).unlink()


@pytest.mark.parametrize("name", ["jnlpba", "ebm_pico"])
def test_real_test_split_with_noisy_predictions_matches_the_references(name, shared_data):
    # A tenth of the gold tags replaced at random (any tag of the split, so I- after O and type
    # switches occur), then scored here and by seqeval (NER) / sklearn over words (PICO).
    from blurbkit.data import load
    spec, gold = get_dataset(name), load.load_split(name, "test", data=shared_data)
    rng = random.Random(0)
    tagset = sorted({tag for record in gold for tag in record["tags"]})
    pred = [[rng.choice(tagset) if rng.random() < 0.1 else t for t in r["tags"]] for r in gold]
    result = score_predictions(spec, gold, pred)
    gold_tags = [r["tags"] for r in gold]
    if spec.task_type == "ner":
        expected = seqeval_prfs(gold_tags, pred, average="micro")[:3]
    else:
        words = lambda seqs: [t.partition("-")[2] or "O" for s in seqs for t in s]  # noqa: E731
        expected = precision_recall_fscore_support(
            words(gold_tags), words(pred), labels=["PAR", "INT", "OUT"], average="macro"
        )[:3]
    assert (result["precision"], result["recall"], result["score"]) == pytest.approx(expected)
    assert 0.5 < result["score"] < 1.0
