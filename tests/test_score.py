"""`blurbkit score`: the BLURB score of SPEC.md §7's columns, and its input errors."""

from __future__ import annotations

import json

import pytest

from blurbkit.cli.main import main
from blurbkit.tasks.registry import blurb_datasets

# SPEC.md §7, keyed by the titles used there (the command also takes dataset names).
TITLES = ["BC5-chem", "BC5-disease", "NCBI-disease", "BC2GM", "JNLPBA", "EBM PICO", "ChemProt", "DDI", "GAD"]
TITLES += ["BIOSSES", "HoC", "PubMedQA", "BioASQ"]
COLUMNS = {
    "BERT-uncased": (
        [89.25, 81.44, 85.67, 80.90, 78.63, 72.34, 71.86, 80.04, 77.72, 82.68, 80.20, 51.62, 70.36],
        "75.99",
    ),
    "BioBERT": (
        [92.85, 84.70, 89.13, 83.82, 79.35, 73.18, 76.14, 80.88, 80.94, 89.52, 81.54, 60.24, 84.14],
        "80.29",
    ),
    "PubMedBERT": (
        [93.33, 85.62, 87.82, 84.52, 80.06, 73.38, 77.24, 82.36, 82.34, 92.30, 82.32, 55.84, 87.56],
        "81.10",
    ),
}


def write(tmp_path, obj, name="scores.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def column(model: str) -> dict[str, float]:
    return dict(zip(TITLES, COLUMNS[model][0], strict=True))


@pytest.mark.parametrize("model", COLUMNS)
def test_score_table_reproduces_the_paper(model, tmp_path, capsys):
    assert main(["score", str(write(tmp_path, column(model)))]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.split() == ["BLURB", "score", COLUMNS[model][1]]
    assert len(out.strip().splitlines()) == 8  # header, six task types, BLURB score


@pytest.mark.parametrize("model", COLUMNS)
def test_score_json(model, tmp_path, capsys):
    assert main(["score", "--json", str(write(tmp_path, column(model)))]) == 0
    result = json.loads(capsys.readouterr().out)
    assert f"{result['score']:.2f}" == COLUMNS[model][1]
    assert len(result["groups"]) == 6 and len(result["datasets"]) == 13


def test_score_accepts_dataset_names(tmp_path, capsys):
    names = [spec.name for spec in blurb_datasets()]  # SPEC §7 row order = datasets.toml order
    scores = dict(zip(names, COLUMNS["PubMedBERT"][0], strict=True))
    assert main(["score", "--json", str(write(tmp_path, scores))]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 81.10


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: {k: v for k, v in s.items() if k != "GAD"},
            "missing BLURB datasets: gad (all 13 are needed)",
        ),
        (lambda s: {**s, "AIMed": 80.0}, "unknown BLURB dataset 'AIMed'"),
        (lambda s: {**s, "ddi": 80.0}, "dataset 'ddi' is given twice"),
        (lambda s: {**s, "HoC": "82.3"}, "score of 'hoc' must be a number"),
        (lambda s: {k: v / 100 for k, v in s.items()}, "give percentages"),
        (lambda s: list(s.values()), "expected a JSON object {dataset: score}"),
        (lambda s: {**s, "BC5-chem": 190.0}, "score of 'bc5chem' is 190.0: a percentage lies between -100 and 100"),
        (lambda s: json.dumps(s)[:-1] + ', "GAD": 70.0}', "key 'GAD' is given twice in one object"),
    ],
)
def test_score_errors(edit, message, tmp_path, capsys):
    path = write(tmp_path, edit(column("PubMedBERT")))
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"blurbkit: error: {path}: ") and message in err
    assert err.count("\n") == 1


def test_score_unreadable_files(tmp_path, capsys):
    assert main(["score", str(tmp_path / "absent.json")]) == 2
    assert "absent.json: file not found" in capsys.readouterr().err
    assert main(["score", str(write(tmp_path, '{"bc5chem": 93.3,\n'))]) == 2
    assert "scores.json:2: not valid JSON" in capsys.readouterr().err
    assert main(["score", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory, not a file" in capsys.readouterr().err


def test_partial_table_averages_only_complete_task_types(tmp_path, capsys):
    scores = column("PubMedBERT")
    del scores["ChemProt"], scores["EBM PICO"]
    assert main(["score", str(write(tmp_path, scores))]) == 2  # without --partial all 13 are needed
    capsys.readouterr()
    assert main(["score", "--partial", str(write(tmp_path, scores))]) == 0
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.strip().splitlines()}
    assert lines["NER"].split()[1] == f"{(93.33 + 85.62 + 87.82 + 84.52 + 80.06) / 5:.2f}"
    assert "-  EBM PICO missing" in lines["PICO"]
    assert "-  DDI 82.36, GAD 82.34, ChemProt missing" in lines["Relation Extraction"]
    assert "needs all 13 datasets (2 missing)" in lines["BLURB score"]
    assert main(["score", "--partial", "--json", str(write(tmp_path, scores))]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["score"] is None and result["missing"] == ["ebm_pico", "chemprot"] and len(result["groups"]) == 4
    assert main(["score", "--partial", "--json", str(write(tmp_path, column("PubMedBERT")))]) == 0
    assert f"{json.loads(capsys.readouterr().out)['score']:.2f}" == "81.10"  # complete: the same score as without
