"""Document formats: PubTator and BioC read and written (data/documents.py), and `blurbkit predict`
on them through the document pipeline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.data.documents import (
    Document,
    bioc_text,
    parse_pubtator,
    pubtator_text,
    read_bioc,
    read_pubtator,
    write_bioc,
    write_pubtator,
)
from blurbkit.errors import BlurbkitError

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"

# BC5CDR as distributed: mentions (concept ids, -1, a composite mention with its 7th column),
# then CID relations between concept ids; a blank line after each document.
PUBTATOR = (
    "227508|t|Naloxone reverses the antihypertensive effect of clonidine.\n"
    "227508|a|In unanesthetized, spontaneously hypertensive rats the decrease in blood pressure and heart rate "
    "produced by intravenous clonidine, 5 to 20 micrograms/kg, was inhibited or reversed by nalozone.\n"
    "227508\t0\t8\tNaloxone\tChemical\tD009270\n"
    "227508\t49\t58\tclonidine\tChemical\tD003000\n"
    "227508\t93\t105\thypertensive\tDisease\tD006973\n"
    "227508\t181\t190\tclonidine\tChemical\tD003000\n"
    "227508\t244\t252\tnalozone\tChemical\t-1\n"
    "227508\tCID\tD003000\tD006973\n"
    "\n"
    "354896|t|Lidocaine-induced cardiac asystole and renal or hepatic failure.\n"
    "354896|a|Intravenous lidocaine in a 67-year-old man resulted in profound depression.\n"
    "354896\t0\t9\tLidocaine\tChemical\tD008012\n"
    "354896\t18\t34\tcardiac asystole\tDisease\tD006323\n"
    "354896\t39\t63\trenal or hepatic failure\tDisease\tD051437|D048550\trenal failure|hepatic failure\n"
    "354896\t77\t86\tlidocaine\tChemical\tD008012\n"
    "354896\tCID\tD008012\tD006323\n"
    "\n"
)


def test_pubtator_round_trip_is_byte_identical(tmp_path):
    documents = parse_pubtator(PUBTATOR.split("\n"))
    assert [d.id for d in documents] == ["227508", "354896"]
    assert documents[0].entities[1] == {"start": 49, "end": 58, "text": "clonidine", "type": "Chemical", "concept": "D003000"}
    assert documents[0].relations == [{"type": "CID", "arg1": "D003000", "arg2": "D006973"}]
    assert pubtator_text(documents) == PUBTATOR
    source = tmp_path / "gold.pubtator"
    source.write_bytes(PUBTATOR.encode())
    write_pubtator(read_pubtator(source), tmp_path / "again.pubtator")
    assert (tmp_path / "again.pubtator").read_bytes() == source.read_bytes()


def test_pubtator_round_trip_of_real_bc5cdr_documents(shared_data, tmp_path):
    path = shared_data / "pubmed_text" / "aioner_pubtator" / "BC5CDR_TrainDev.PubTator.gz"
    assert path.is_file(), f"{path} is not in the data folder (the distribution has it)"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    first = "".join(block + "\n\n" for block in text.split("\n\n")[:25])  # 25 documents, read at test time
    (tmp_path / "bc5cdr.pubtator").write_text(first, encoding="utf-8")
    documents = read_pubtator(tmp_path / "bc5cdr.pubtator")
    assert len(documents) == 25 and sum(len(d.entities) for d in documents) > 100
    assert pubtator_text(documents).encode() == first.encode()


def test_broken_pubtator_offsets_name_file_and_line(tmp_path):
    broken = PUBTATOR.replace("227508\t49\t58\tclonidine", "227508\t48\t57\tclonidine")
    path = tmp_path / "broken.pubtator"
    path.write_text(broken)
    with pytest.raises(BlurbkitError) as err:
        read_pubtator(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4: ") and "\n" not in message and "'clonidine'" in message


@pytest.mark.parametrize("broken, line, message", [
    (PUBTATOR.replace("227508\t49\t58\t", "227508\t-1\t58\t"), 4, "a mention's offsets must be non-negative, found -1 and 58"),
    (PUBTATOR.replace("354896|a|Intravenous lidocaine in a 67-year-old man resulted in profound depression.\n"
                      "354896\t0\t9\tLidocaine\tChemical\tD008012\n"
                      "354896\t18\t34\tcardiac asystole\tDisease\tD006323\n"
                      "354896\t39\t63\trenal or hepatic failure\tDisease\tD051437|D048550\trenal failure|hepatic failure\n"
                      "354896\t77\t86\tlidocaine\tChemical\tD008012\n"
                      "354896\tCID\tD008012\tD006323\n", ""), 11, "document '354896' has no '|a|' line"),
])
def test_malformed_pubtator_is_one_line_naming_the_line(broken, line, message, tmp_path):
    assert broken != PUBTATOR
    path = tmp_path / "broken.pubtator"
    path.write_text(broken)
    with pytest.raises(BlurbkitError) as err:
        read_pubtator(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("line, relation", [
    # BioRED-style: PMID, type, gene id (a number), disease id, novelty
    ("227508\tAssociation\t7157\tD006973\tNovel", {"type": "Association", "arg1": "7157", "arg2": "D006973", "extra": ["Novel"]}),
    # a numeric label (GAD's "1") with a probability after the ids, as blurbkit writes it
    ("227508\t1\tT1\tT2\t0.93", {"type": "1", "arg1": "T1", "arg2": "T2", "extra": ["0.93"]}),
])
def test_relation_lines_with_numbers_and_extra_columns_stay_relations(line, relation):
    text = PUBTATOR.replace("227508\tCID\tD003000\tD006973", line)
    assert parse_pubtator(text.split("\n"))[0].relations == [relation]


def test_a_document_repeated_in_a_file_is_read_twice():
    # The distributed NCBI-disease PubTator (AIONER) holds PMID 8528200 twice.
    first = PUBTATOR.split("\n\n")[0] + "\n\n"
    assert [d.id for d in parse_pubtator((first + first).split("\n"))] == ["227508", "227508"]


@pytest.mark.parametrize("offset, message", [('"abc"', "must be a non-negative integer, not 'abc'"),
                                             ("-5", "must be a non-negative integer, not -5")])
def test_bioc_json_with_a_bad_passage_offset_is_one_line(offset, message, tmp_path):
    path = tmp_path / "c.json"
    write_bioc([Document(id="1", text="aspirin")], path)
    collection = json.loads(path.read_text())
    text = json.dumps(collection).replace('"offset": 0', f'"offset": {offset}')
    assert text != json.dumps(collection)
    path.write_text(text)
    with pytest.raises(BlurbkitError, match=message):
        read_bioc(path)


def test_bioc_json_without_a_required_field_names_it(tmp_path):
    path = tmp_path / "c.json"
    write_bioc([Document(id="1", text="aspirin")], path)
    collection = json.loads(path.read_text())
    del collection["source"]
    path.write_text(json.dumps(collection))
    with pytest.raises(BlurbkitError, match="missing field 'source'"):
        read_bioc(path)


@pytest.mark.parametrize("suffix", [".xml", ".json"])
def test_bioc_round_trip(tmp_path, suffix):
    documents = parse_pubtator(PUBTATOR.split("\n"))
    documents.append(Document(id="u", text="Café α-synuclein 😀 日本語 aspirin",
                              entities=[{"start": 5, "end": 16, "text": "α-synuclein", "type": "GENE", "id": "T1"},
                                        {"start": 23, "end": 30, "text": "aspirin", "type": "Chemical", "id": "T2",
                                         "confidence": 0.5}],
                              relations=[{"type": "CPR:4", "arg1": "T2", "arg2": "T1", "probability": 0.9}]))
    path = tmp_path / f"collection{suffix}"
    write_bioc(documents, path)
    back = read_bioc(path)
    for before, after in zip(documents, back, strict=True):
        assert (after.id, after.title, after.text) == (before.id, before.title, before.text)
        entity_fields = ("start", "end", "text", "type", "concept", "confidence")
        assert [tuple(e.get(k) for k in entity_fields) for e in after.entities] == [
            tuple(e.get(k) for k in entity_fields) for e in before.entities]
        assert [(r["type"], r["arg1"], r["arg2"], r.get("probability")) for r in after.relations] == [
            (r["type"], r["arg1"], r["arg2"], r.get("probability")) for r in before.relations]
    # What the writer alone could lose and still agree with itself below: the model's numbers and
    # the ids the relations point at.
    assert [(e["id"], e.get("confidence")) for e in back[-1].entities] == [("T1", None), ("T2", 0.5)]
    assert back[-1].relations[0]["probability"] == 0.9
    assert bioc_text(back, json_format=suffix == ".json") == path.read_text(encoding="utf-8")


def test_bioc_annotation_off_its_text_is_refused(tmp_path):
    path = tmp_path / "c.xml"
    write_bioc([Document(id="1", text="aspirin", entities=[{"start": 0, "end": 7, "text": "aspirin", "type": "C"}])], path)
    path.write_text(path.read_text().replace('<location offset="0"', '<location offset="1"'))
    with pytest.raises(BlurbkitError, match="not 'aspirin'"):
        read_bioc(path)


@pytest.mark.slow
def test_predict_command_writes_pubtator_and_bioc(tmp_path, capsys):
    gold = tmp_path / "gold.pubtator"
    gold.write_text(PUBTATOR)
    out = tmp_path / "pred.pubtator"
    assert main(["predict", "--ner", str(FIXTURES / "ner_bio"), "--input", str(gold), "--format", "pubtator",
                 "--out", str(out)]) == 0
    predicted = read_pubtator(out)  # the reader checks every offset against the text
    assert [d.id for d in predicted] == ["227508", "354896"] and all(d.entities for d in predicted)
    assert predicted[0].title == "Naloxone reverses the antihypertensive effect of clonidine."
    bioc_out = tmp_path / "pred.json"
    assert main(["predict", "--model", str(FIXTURES / "ner_bio"), "--input", str(gold), "--format", "pubtator",
                 "--out", str(out)]) == 0
    write_bioc(read_pubtator(out), tmp_path / "in.xml")
    assert main(["predict", "--ner", str(FIXTURES / "ner_bio"), "--input", str(tmp_path / "in.xml"),
                 "--format", "bioc", "--out", str(bioc_out)]) == 0
    assert len(read_bioc(bioc_out)) == 2
    lines = tmp_path / "docs.jsonl"
    lines.write_text(json.dumps({"id": "x", "title": "Aspirin", "text": "and heparin."}) + "\n")
    assert main(["predict", "--ner", str(FIXTURES / "ner_bio"), "--input", str(lines), "--out", str(tmp_path / "o.jsonl")]) == 0
    result = json.loads((tmp_path / "o.jsonl").read_text())
    assert result["id"] == "x" and all("Aspirin and heparin."[e["start"]:e["end"]] == e["text"] for e in result["entities"])


def test_predict_without_a_model_says_what_to_pass(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("text\n")
    assert main(["predict", "--input", str(path)]) == 2
    assert "--model" in capsys.readouterr().err
