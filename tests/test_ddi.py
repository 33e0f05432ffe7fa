"""DDI: the XML -> BLURB converter, the reader, and their agreement with BLURB's own dev/test files."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from blurbkit.data.readers.base import ReadOptions
from blurbkit.data.readers.ddi import compare_with_distributed, main, read_ddi
from blurbkit.data.readers.ddi_xml import DRUG, DRUG_DRUG, mask, pairs_from_xml, to_record
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import get_dataset

SPEC = get_dataset("ddi")

# One sentence with a discontinuous mention ("alpha-blockers" = 12-17;27-34) nested with a contiguous
# one ("beta-blockers" = 22-34), a CR LF line end and an entity (warfarin) that only some pairs use.
SNIPPET = """<?xml version="1.0" encoding="UTF-8"?>
<document id="DDI-DrugBank.d1">
  <sentence id="DDI-DrugBank.d1.s0" text="Aspirin and alpha- or beta-blockers raise warfarin levels.&#xd;&#xa;">
    <entity id="DDI-DrugBank.d1.s0.e0" charOffset="0-6" type="drug" text="Aspirin"/>
    <entity id="DDI-DrugBank.d1.s0.e1" charOffset="12-17;27-34" type="group" text="alpha-blockers"/>
    <entity id="DDI-DrugBank.d1.s0.e2" charOffset="22-34" type="group" text="beta-blockers"/>
    <entity id="DDI-DrugBank.d1.s0.e3" charOffset="42-49" type="drug" text="warfarin"/>
    <pair id="DDI-DrugBank.d1.s0.p0" e1="DDI-DrugBank.d1.s0.e0" e2="DDI-DrugBank.d1.s0.e1" ddi="true" type="mechanism"/>
    <pair id="DDI-DrugBank.d1.s0.p1" e1="DDI-DrugBank.d1.s0.e1" e2="DDI-DrugBank.d1.s0.e2" ddi="false"/>
    <pair id="DDI-DrugBank.d1.s0.p2" e1="DDI-DrugBank.d1.s0.e0" e2="DDI-DrugBank.d1.s0.e3" ddi="false"/>
  </sentence>
  <sentence id="DDI-DrugBank.d1.s1" text="No pairs here.">
    <entity id="DDI-DrugBank.d1.s1.e0" charOffset="3-7" type="drug" text="pairs"/>
  </sentence>
</document>
"""
SNIPPET_TSV = (
    "DDI-DrugBank.d1.s0.p0\t@DRUG$ and @DRUG$ raise warfarin levels.  \tDDI-mechanism\n"
    "DDI-DrugBank.d1.s0.p1\tAspirin and @DRUG-DRUG$ raise warfarin levels.  \tDDI-false\n"
    "DDI-DrugBank.d1.s0.p2\t@DRUG$ and alpha- or beta-blockers raise @DRUG$ levels.  \tDDI-false\n"
)


def check_record(record: dict) -> None:
    """Canonical relation record (data/schema.py), with DDI's `original`."""
    assert set(record) == {"id", "text", "label", "entities", "original"}
    assert record["label"] in SPEC.labels
    assert len(record["entities"]) == 2
    for entity in record["entities"]:
        assert set(entity) == {"start", "end", "type"} and entity["type"] == "DRUG"
        assert record["text"][entity["start"] : entity["end"]] in (DRUG, DRUG_DRUG)
    placeholders = {(e["start"], e["end"]) for e in record["entities"]}
    assert record["text"].count(DRUG) + record["text"].count(DRUG_DRUG) == len(placeholders)
    original = record["original"]
    assert set(original) == {"text", "entities"} and len(original["entities"]) == 2
    for entity in original["entities"]:
        assert 0 <= entity["start"] < entity["end"] <= len(original["text"]) and entity["type"] == "DRUG"
    assert "\r" not in original["text"] and "\n" not in original["text"]


def make_source(tmp_path: Path, docs: dict[str, bytes], index: str = "", tsv: str = SNIPPET_TSV) -> Path:
    """A DDI source folder: tarball (top folder DDIextraction_2013/), split indexes, dev.tsv."""
    (tmp_path / "raw_corpus").mkdir()
    with tarfile.open(tmp_path / "raw_corpus" / "DDIextraction_2013.tar.gz", "w:gz") as archive:
        for name, data in docs.items():
            info = tarfile.TarInfo(f"DDIextraction_2013/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (tmp_path / "blurb_split_index").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "blurb_split_index" / f"{split}_files.tsv").write_text(index or "\n".join(docs))
    (tmp_path / "dev.tsv").write_text(tsv, encoding="utf-8")
    return tmp_path


# --- the conversion rules on hand-made XML ---------------------------------------------------------


def test_snippet_conversion_rules() -> None:
    records = [to_record(pair) for pair in pairs_from_xml(SNIPPET.encode(), "snippet.xml")]
    assert [(r["id"], r["text"], r["label"]) for r in records] == [
        tuple(line.split("\t")) for line in SNIPPET_TSV.splitlines()
    ]
    for record in records:
        check_record(record)
    discontinuous, nested, plain = records
    # Discontinuous: masked over its whole extent, `original` keeps the first contiguous span.
    assert discontinuous["entities"] == [
        {"start": 0, "end": 6, "type": "DRUG"},
        {"start": 11, "end": 17, "type": "DRUG"},
    ]
    assert discontinuous["original"]["entities"][1] == {"start": 12, "end": 18, "type": "DRUG"}
    # Overlapping / nested: one @DRUG-DRUG$ stands for both entities.
    assert nested["entities"][0] == nested["entities"][1] == {"start": 12, "end": 23, "type": "DRUG"}
    assert nested["original"]["entities"] == [
        {"start": 12, "end": 18, "type": "DRUG"},
        {"start": 22, "end": 35, "type": "DRUG"},
    ]
    # CR LF -> two spaces, one for one, so the corpus offsets still hold in `original`.
    assert plain["original"]["text"] == "Aspirin and alpha- or beta-blockers raise warfarin levels.  "
    assert plain["original"]["text"][42:50] == "warfarin"


def test_mask_keeps_pair_order_when_entity_1_comes_later() -> None:
    text, spans = mask("A and B.", (6, 7), (0, 1))
    assert text == "@DRUG$ and @DRUG$."
    assert [text[s:e] for s, e in spans] == [DRUG, DRUG] and spans[0][0] > spans[1][0]


def test_reader_on_snippet(tmp_path: Path) -> None:
    source = make_source(tmp_path, {"train_dataset/DrugBank/d1.xml": SNIPPET.encode()})
    train = read_ddi(SPEC, source, "train", ReadOptions())
    assert len(train.records) == 3 and "3 instances vs 25296 published" in train.notes[0]
    assert any("differs from the published count by -25293" in note for note in train.notes)
    dev = read_ddi(SPEC, source, "dev", ReadOptions())
    assert [r["text"] for r in dev.records] == [r["text"] for r in train.records]
    assert [r["entities"] for r in dev.records] == [r["entities"] for r in train.records]
    assert [r["original"] for r in dev.records] == [r["original"] for r in train.records]
    assert "reproduces 3 of them identically" in dev.notes[0]
    assert source / "dev.tsv" in dev.files


def test_compare_reports_each_class_of_difference(tmp_path: Path) -> None:
    lines = SNIPPET_TSV.splitlines()
    tampered = [
        lines[0].replace("levels.  ", "levels."),  # whitespace only
        lines[1].replace("DDI-false", "DDI-effect"),  # label
        "DDI-DrugBank.d9.s0.p0\t@DRUG$ and @DRUG$.\tDDI-false",  # not in the XML; p2 becomes extra
    ]
    source = make_source(
        tmp_path, {"train_dataset/DrugBank/d1.xml": SNIPPET.encode()}, tsv="\n".join(tampered)
    )
    (source / "test.tsv").write_text(SNIPPET_TSV)
    report = compare_with_distributed(source)
    assert report["test"]["identical"] == 3 and report["train"]["converted"] == 3
    dev = report["dev"]
    counts = {
        kind: dev[kind] for kind in ("identical", "text_different", "label_different", "missing", "extra")
    }
    assert counts == {"identical": 0, "text_different": 1, "label_different": 1, "missing": 1, "extra": 1}
    assert dev["reasons"]["text_different"] == {"whitespace only": 1}
    assert dev["examples"]["missing"][0]["id"] == "DDI-DrugBank.d9.s0.p0"
    assert dev["examples"]["extra"][0]["id"] == "DDI-DrugBank.d1.s0.p2"


# --- bad input ----------------------------------------------------------------------------------------


def test_corrupt_tarball(tmp_path: Path, shared_data: Path) -> None:
    source = make_source(tmp_path, {"train_dataset/DrugBank/d1.xml": SNIPPET.encode()})
    tarball = source / "raw_corpus" / "DDIextraction_2013.tar.gz"
    tarball.write_bytes(b"not a tarball at all")
    with pytest.raises(BlurbkitError, match=r"DDIextraction_2013\.tar\.gz: not a readable \.tar\.gz"):
        read_ddi(SPEC, source, "train", ReadOptions())
    real = (shared_data / "ddi" / "raw_corpus" / "DDIextraction_2013.tar.gz").read_bytes()
    tarball.write_bytes(real[: len(real) // 2])  # truncated gzip stream
    with pytest.raises(BlurbkitError, match="not a readable"):
        read_ddi(SPEC, source, "train", ReadOptions())


def test_xml_parse_error_names_member_and_line(tmp_path: Path) -> None:
    broken = SNIPPET.replace("</sentence>\n  <sentence", "</sentenc>\n  <sentence", 1).encode()
    source = make_source(tmp_path, {"train_dataset/MedLine/broken.xml": broken})
    with pytest.raises(BlurbkitError, match=r"train_dataset/MedLine/broken\.xml:11: XML parse error"):
        read_ddi(SPEC, source, "train", ReadOptions())


def test_index_naming_a_missing_file(tmp_path: Path) -> None:
    index = "train_dataset/DrugBank/d1.xml\ntrain_dataset/DrugBank/gone.xml"
    source = make_source(tmp_path, {"train_dataset/DrugBank/d1.xml": SNIPPET.encode()}, index)
    with pytest.raises(
        BlurbkitError, match=r"train_files\.tsv:2: 'train_dataset/DrugBank/gone\.xml' is not in"
    ):
        read_ddi(SPEC, source, "train", ReadOptions())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('charOffset="42-49"', 'charOffset="42-99"', r"DDI-DrugBank\.d1\.s0\.e3: bad charOffset '42-99'"),
        ('charOffset="0-6"', 'charOffset="0_6"', r"DDI-DrugBank\.d1\.s0\.e0: bad charOffset"),
        (
            'e2="DDI-DrugBank.d1.s0.e3"',
            'e2="DDI-DrugBank.d1.s0.e9"',
            r"pair DDI-DrugBank\.d1\.s0\.p2 names an entity",
        ),
        ('ddi="true" type="mechanism"', 'ddi="maybe"', r"pair DDI-DrugBank\.d1\.s0\.p0 has ddi='maybe'"),
    ],
)
def test_bad_annotations_name_the_id(tmp_path: Path, old: str, new: str, message: str) -> None:
    source = make_source(tmp_path, {"train_dataset/DrugBank/d1.xml": SNIPPET.replace(old, new).encode()})
    with pytest.raises(BlurbkitError, match=message):
        read_ddi(SPEC, source, "train", ReadOptions())


@pytest.mark.parametrize(
    ("tsv", "message"),
    [
        (SNIPPET_TSV + "DDI-x.p0\tonly two fields\n", r"dev\.tsv:4: expected 3 tab-separated columns"),
        (
            SNIPPET_TSV.replace("@DRUG-DRUG$", "beta"),
            r"dev\.tsv:2: expected the pair's two entity placeholders",
        ),
        (SNIPPET_TSV.replace("DDI-mechanism", "DDI-maybe"), r"dev\.tsv:1: unknown label 'DDI-maybe'"),
        (SNIPPET_TSV + SNIPPET_TSV.splitlines()[0], r"dev\.tsv:4: id DDI-DrugBank\.d1\.s0\.p0 occurs twice"),
    ],
)
def test_bad_distributed_tsv(tmp_path: Path, tsv: str, message: str) -> None:
    source = make_source(tmp_path, {"train_dataset/DrugBank/d1.xml": SNIPPET.encode()}, tsv=tsv)
    with pytest.raises(BlurbkitError, match=message):
        read_ddi(SPEC, source, "dev", ReadOptions())


# --- the real corpus ---------------------------------------------------------------------------------


def test_train_from_xml_matches_the_published_count(shared_data: Path) -> None:
    train = read_ddi(SPEC, shared_data / "ddi", "train", ReadOptions())
    assert len(train.records) == 25296 == SPEC.published["train"]
    assert len({record["id"] for record in train.records}) == 25296
    for record in train.records:
        check_record(record)
    assert "25296 instances vs 25296 published" in train.notes[0]
    assert train.notes[1].startswith("65 instances")  # corpus offset errors, kept as BLURB keeps them


def test_dev_test_conversion_equals_the_distributed_files(shared_data: Path) -> None:
    report = compare_with_distributed(shared_data / "ddi")
    for split, size in (("dev", 2496), ("test", 5716)):
        assert (
            report[split]["identical"] == report[split]["distributed"] == report[split]["converted"] == size
        )
        for kind in ("text_different", "label_different", "missing", "extra"):
            assert report[split][kind] == 0, report[split]["examples"]
    assert report["dev"]["corpus_offset_errors_reproduced"] == 17
    assert report["train"] == {
        "converted": 25296,
        "published": 25296,
        "documents": 624,
        "corpus_offset_errors_reproduced": 65,
    }


def test_dev_test_reader_is_the_distributed_file_with_original(shared_data: Path) -> None:
    for split, size in (("dev", 2496), ("test", 5716)):
        data = read_ddi(SPEC, shared_data / "ddi", split, ReadOptions())
        assert len(data.records) == size
        lines = (shared_data / "ddi" / f"{split}.tsv").read_text("utf-8").splitlines()
        assert [(r["id"], r["text"], r["label"]) for r in data.records] == [
            tuple(x.split("\t")) for x in lines
        ]
        for record in data.records:
            check_record(record)
        assert f"reproduces {size} of them identically" in data.notes[0]


def test_entry_point_prints_the_comparison(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(shared_data / "ddi")]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["identical"] == 5716
    assert main([]) == 2
    assert main([str(shared_data / "nope")]) == 2
    assert "file not found" in capsys.readouterr().err
