"""What the document pipeline skips reaches the user: relation pairs that max_length cuts off are
not given a label but a warning (one per sentence, naming the pairs), and `blurbkit predict --ner
... --relations ...` prints every warning on stderr and keeps it in JSON-lines output. Models: the
tiny fixtures (ner_bio, relation: chemprot) and copies (a GENE tagger; the relation model recorded
with a max_length of 16, so that an ordinary sentence is longer than it)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.inference import pipeline as pipeline_module
from blurbkit.inference.pipeline import Pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
# The fixtures' tokenizer knows no word: one token a word, three for a placeholder (@ TYPE $).
LONG = "aspirin binds COX1 and " + "then " * 20 + "heparin binds COX2 ."


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(chemical NER, gene NER, relation model with max_length 16)."""
    root = tmp_path_factory.mktemp("models")
    gene = shutil.copytree(FIXTURES / "ner_bio", root / "bc2gm" / "model")
    recipe = json.loads((gene / "blurbkit.json").read_text())
    (gene / "blurbkit.json").write_text(json.dumps(recipe | {"dataset": "bc2gm", "labels": ["O", "B-GENE", "I-GENE"]}))
    short = shutil.copytree(FIXTURES / "relation", root / "chemprot16" / "model")
    recipe = json.loads((short / "blurbkit.json").read_text())
    (short / "blurbkit.json").write_text(json.dumps(recipe | {"max_length": 16}))
    return FIXTURES / "ner_bio", gene, short


def test_pairs_past_max_length_are_skipped_with_a_warning_naming_them(models):
    chem, gene, relation = models
    pipe = Pipeline.load(ner=[chem, gene], relations=[relation], keep_negative=True)
    result = pipe([LONG])[0]
    model = pipe.relations[0]
    pairs, _ = model.candidates(LONG, [{k: e[k] for k in ("start", "end", "type")} for e in result["entities"]],
                                pipe.type_map)
    (warning,) = result["warnings"]
    found = re.search(r"(\d+) candidate pair\(s\) of the sentence at offset 0 reach past the model's max_length "
                      r"\(16 tokens\); their relations were not predicted: (T\d+-T\d+)", warning)
    assert found, warning
    assert result["relations"] and len(result["relations"]) + int(found.group(1)) == len(pairs)
    predicted = {f"{r['head']}-{r['tail']}" for r in result["relations"]}
    assert found.group(2) not in predicted
    entities = {e["id"]: e for e in result["entities"]}
    last = max(entities[r["tail"]]["start"] for r in result["relations"])
    assert last < len(" ".join(LONG.split()[:15]))  # 16 tokens hold [CLS] and fewer than 15 words


def test_predict_prints_pipeline_warnings_and_keeps_them_in_json_lines(models, tmp_path, capsys, monkeypatch):
    chem, gene, relation = models
    inputs = tmp_path / "docs.txt"
    inputs.write_text("Aspirin and heparin inhibit EGFR and warfarin.\n" + LONG + "\n")
    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(pipeline_module, "MAX_PAIRS_PER_SENTENCE", 3)  # the first document's sentence has more
    argv = ["predict", "--ner", str(chem), str(gene), "--relations", str(relation), "--input", str(inputs)]
    assert main([*argv, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{inputs}: document 0: warning: chemprot16: a sentence at offset 0 has more than 3 candidate pairs" in err
    assert f"{inputs}: document 1: warning: chemprot16: " in err and "Traceback" not in err
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(len(r["warnings"]) == 1 for r in results) and "more than 3" in results[0]["warnings"][0]
    # Written formats have no place for them: stderr only, and the file stays the format.
    pubtator = tmp_path / "in.pubtator"
    pubtator.write_text("1|t|Aspirin and heparin inhibit EGFR and warfarin.\n1|a|\n\n")
    assert main([*argv[:-1], str(pubtator), "--format", "pubtator", "--out", str(tmp_path / "o.pubtator")]) == 0
    assert f"{pubtator}: document 1: warning: chemprot16: a sentence" in capsys.readouterr().err
    assert "warning" not in (tmp_path / "o.pubtator").read_text()
