"""Every reader on the real ../shared/data: counts as in SOURCE.md / SPEC.md, schema, ids, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blurbkit.data.readers import SplitUnavailable, read_split
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec, get_dataset

# (dataset, split, measured count in the dataset's unit): SOURCE.md "measured" columns. Where a
# distribution differs from the published count (SPEC.md) the measured value is the one asserted.
COUNTS = [
    ("bc5chem", "train", 5203), ("bc5chem", "dev", 5347), ("bc5chem", "test", 5385),
    ("bc5disease", "train", 4182), ("bc5disease", "dev", 4246), ("bc5disease", "test", 4424),
    ("ncbi_disease", "train", 5134), ("ncbi_disease", "dev", 787), ("ncbi_disease", "test", 960),
    ("bc2gm", "train", 15197), ("bc2gm", "dev", 3061), ("bc2gm", "test", 6325),
    ("jnlpba", "train", 46750), ("jnlpba", "dev", 4551), ("jnlpba", "test", 8662),
    ("ebm_pico", "dev", 87913), ("ebm_pico", "test", 11908),  # words tagged P/I/O; BLURB's unit unexplained
    ("chemprot", "train", 18035), ("chemprot", "dev", 11268), ("chemprot", "test", 15745),
    ("gad", "train", 4261), ("gad", "dev", 535), ("gad", "test", 534),
    ("biosses", "train", 64), ("biosses", "dev", 16), ("biosses", "test", 20),
    ("hoc", "train", 1295), ("hoc", "dev", 186), ("hoc", "test", 371),
    ("pubmedqa", "train", 450), ("pubmedqa", "dev", 50), ("pubmedqa", "test", 500),
    ("bioasq", "train", 670), ("bioasq", "dev", 75), ("bioasq", "test", 140),
    ("aimed", "train", 4667), ("aimed", "dev", 546), ("aimed", "test", 621),  # fold 0: SOURCE.md fold table
]  # fmt: skip
# Published counts that the distribution reproduces exactly (all but these).
DIFFERS = {("bc5disease", "dev"), ("ebm_pico", "dev"), ("ebm_pico", "test")}
OTHER_SIZES = {  # record counts: sentences (NER, SOURCE.md), sentences/abstracts (PICO)
    ("bc5chem", "train"): 4560, ("bc2gm", "test"): 5038, ("jnlpba", "train"): 16807,
    ("ebm_pico", "dev"): 7049, ("ebm_pico", "test"): 2064,
}  # fmt: skip

_CACHE: dict[tuple[str, str, ReadOptions], SplitData] = {}


def read(shared: Path, name: str, split: str, options: ReadOptions | None = None) -> SplitData:
    options = options or ReadOptions()
    key = (name, split, options)
    if key not in _CACHE:
        _CACHE[key] = read_split(get_dataset(name), shared / name, split, options)
    return _CACHE[key]


@pytest.mark.parametrize(("name", "split", "expected"), COUNTS)
def test_counts_match_source_md(shared_data, name, split, expected):
    spec = get_dataset(name)
    data = read(shared_data, name, split)
    assert spec.task.measure(spec, data.records) == expected
    if spec.published and (name, split) not in DIFFERS:
        assert spec.published[split] == expected
    if (name, split) in OTHER_SIZES:
        assert len(data.records) == OTHER_SIZES[name, split]
    assert all(path.is_file() for path in data.files)


def _entity_ok(entity: dict, text: str) -> bool:
    return set(entity) == {"start", "end", "type"} and 0 <= entity["start"] < entity["end"] <= len(text)


def check_schema(spec: DatasetSpec, record: dict) -> None:
    """The canonical record of data/schema.py, key for key."""
    assert isinstance(record["id"], str) and record["id"]
    kind = spec.task_type
    if spec.task_type in ("ner", "pico"):
        assert set(record) == {"id", "doc_id", "tokens", "tags"}
        assert record["doc_id"] is None or isinstance(record["doc_id"], str)
        assert len(record["tokens"]) == len(record["tags"]) > 0
        assert all(isinstance(t, str) and t for t in record["tokens"])
        allowed = {"O"} | {f"{p}-{t}" for t in spec.entity_types for p in ("B", "I")}
        if kind == "pico":
            allowed = {"O"} | {f"I-{t}" for t in spec.entity_types}
        assert set(record["tags"]) <= allowed
    elif kind == "relation":
        assert set(record) - {"original"} == {"id", "text", "label", "entities"}
        assert record["label"] in spec.labels
        assert len(record["entities"]) == 2
        for entity in record["entities"]:
            assert _entity_ok(entity, record["text"]) and entity["type"] in spec.entity_types
            placeholder = record["text"][entity["start"] : entity["end"]]
            assert placeholder.startswith("@") and placeholder.endswith("$")
        if "original" in record:
            assert set(record["original"]) == {"text", "entities"}
            assert all(_entity_ok(e, record["original"]["text"]) for e in record["original"]["entities"])
    elif kind == "similarity":
        assert set(record) == {"id", "text_a", "text_b", "score"}
        assert isinstance(record["score"], float) and 0 <= record["score"] <= 4
    elif kind == "doc_classification":
        assert set(record) - {"sentences"} == {"id", "text", "labels"}
        assert set(record["labels"]) <= set(spec.labels)
        for sentence in record.get("sentences", []):
            assert set(sentence) == {"id", "text", "labels"} and set(sentence["labels"]) <= set(spec.labels)
    elif kind == "qa":
        assert set(record) == {"id", "question", "context", "label"}
        assert record["label"] in spec.labels
    json.dumps(record)  # JSON-serialisable as written by prepare


@pytest.mark.parametrize("name", sorted({name for name, _, _ in COUNTS}))
def test_schema_and_stable_unique_ids(shared_data, name):
    spec = get_dataset(name)
    for split in ("train", "dev", "test"):
        if name == "ebm_pico" and split == "train":
            continue
        records = read(shared_data, name, split).records
        for record in records:
            check_schema(spec, record)
        ids = [record["id"] for record in records]
        assert len(set(ids)) == len(ids)
        again = (
            read_split(spec, shared_data / name, split, ReadOptions()) if name in ("gad", "biosses") else None
        )
        if again is not None:  # a fresh read gives the same ids in the same order
            assert [r["id"] for r in again.records] == ids


def test_id_conventions(shared_data):
    assert read(shared_data, "gad", "dev").records[0]["id"] == "gad-dev-0"
    assert read(shared_data, "bc5chem", "test").records[3]["id"] == "bc5chem-test-3"
    assert read(shared_data, "biosses", "dev").records[0]["id"] == "88"
    assert read(shared_data, "pubmedqa", "dev").records[0]["id"] == "15879722"
    assert read(shared_data, "ebm_pico", "test").records[0]["id"] == "10070173_s0"
    jnlpba = read(shared_data, "jnlpba", "train").records
    assert len({r["doc_id"] for r in jnlpba}) == 1800 and jnlpba[0]["doc_id"] == "jnlpba-train-d0"
    assert "-DOCSTART-" not in {token for r in jnlpba for token in r["tokens"]}
    assert read(shared_data, "bc2gm", "dev").records[0]["doc_id"] is None


def test_readers_registered():
    for name in ("conll", "pico", "chemprot", "gad", "biosses", "hoc", "pubmedqa", "bioasq", "aimed", "ddi"):
        assert name in READERS


def test_pico_train_is_unavailable_without_the_option(shared_data):
    with pytest.raises(SplitUnavailable, match="train split is not distributed.*--pico-train-from-dev N"):
        read(shared_data, "ebm_pico", "train")


def test_pico_carve_out_first_n_abstracts(shared_data):
    options = ReadOptions(pico_train_from_dev=10)
    full = read(shared_data, "ebm_pico", "dev").records
    train = read(shared_data, "ebm_pico", "train", options)
    dev = read(shared_data, "ebm_pico", "dev", options)
    order = list(dict.fromkeys(r["doc_id"] for r in full))
    assert list(dict.fromkeys(r["doc_id"] for r in train.records)) == order[:10]
    assert {r["doc_id"] for r in dev.records} == set(order[10:])
    assert train.records + dev.records == full  # same records, same ids, nothing lost or duplicated
    for data in (train, dev):
        assert any(
            "LOCAL DEVIATION from BLURB" in note and "first 10 abstracts" in note for note in data.notes
        )
    assert (
        read(shared_data, "ebm_pico", "test", options).records
        == read(shared_data, "ebm_pico", "test").records
    )
    for carve in (960, 0):  # 0 is refused like any value out of range, not taken for "not given"
        with pytest.raises(BlurbkitError, match="between 1 and 959"):
            read_split(
                get_dataset("ebm_pico"), shared_data / "ebm_pico", "train", ReadOptions(pico_train_from_dev=carve)
            )


@pytest.mark.parametrize("fold", [0, 9])
def test_aimed_folds_disjoint(shared_data, fold):
    options = ReadOptions(fold=fold)
    splits = {split: read(shared_data, "aimed", split, options).records for split in ("train", "dev", "test")}
    ids = {split: {r["id"] for r in records} for split, records in splits.items()}
    docs = {split: {i.split(".")[1] for i in id_set} for split, id_set in ids.items()}
    assert sum(map(len, ids.values())) == len(set().union(*ids.values())) == 5834
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not ids[a] & ids[b] and not docs[a] & docs[b]
    assert len(docs["test"]) == len(docs["dev"]) == 22
    fold_ids = {
        json.loads(line)["id"] for line in (shared_data / "aimed" / f"test_{(fold + 1) % 10}.json").open()
    }
    assert ids["dev"] == fold_ids
    for record in splits["test"]:
        original = record["original"]
        assert [record["text"][e["start"] : e["end"]] for e in record["entities"]][0].startswith("@PROTEIN")
        assert record["label"] in ("positive", "negative")
        assert all(original["text"][e["start"] : e["end"]].strip() for e in original["entities"])
    with pytest.raises(BlurbkitError, match="--fold must be between 0 and 9"):
        read_split(get_dataset("aimed"), shared_data / "aimed", "test", ReadOptions(fold=10))


def test_aimed_masks_both_mentions(shared_data):
    record = read(shared_data, "aimed", "test").records[0]
    assert record["text"].startswith(
        "Physical and functional interactions between the transcriptional inhibitors @PROTEIN$ and @PROTEIN$."
    )
    assert [record["original"]["text"][e["start"] : e["end"]] for e in record["original"]["entities"]] == [
        "Id3",
        "ITF-2b",
    ]
    overlapping = [
        r for r in read(shared_data, "aimed", "train").records if r["entities"][0] == r["entities"][1]
    ]
    assert overlapping and all("@PROTEIN-PROTEIN$" in r["text"] for r in overlapping)


def test_chemprot_placeholders_and_labels(shared_data):
    records = read(shared_data, "chemprot", "train").records
    first = records[0]
    assert first["label"] == "false"
    assert [first["text"][e["start"] : e["end"]] for e in first["entities"]] == ["@CHEMICAL$", "@GENE$"]
    both = next(r for r in records if "@CHEM-GENE$" in r["text"])
    assert both["entities"][0]["start"] == both["entities"][1]["start"]
    assert [e["type"] for e in both["entities"]] == ["CHEMICAL", "GENE"]
    counts = {label: sum(r["label"] == label for r in records) for label in get_dataset("chemprot").labels}
    assert counts == {"false": 13923, "CPR:3": 756, "CPR:4": 2227, "CPR:5": 173, "CPR:6": 229, "CPR:9": 727}


def test_hoc_sentences_merge_into_abstracts(shared_data):
    data = read(shared_data, "hoc", "dev")
    assert not data.notes  # the union of sentence labels equals every abstract's labels
    assert sum(len(r["sentences"]) for r in data.records) == 1798
    for record in data.records:
        sentences = record["sentences"]
        assert all(s["id"].startswith(record["id"] + "_s") for s in sentences)
        assert {label for s in sentences for label in s["labels"]} == set(record["labels"])
        assert " ".join(s["text"] for s in sentences) == record["text"]
    no_label = sum(not r["labels"] for r in data.records)
    assert no_label == 22  # SOURCE.md: dev abstracts with no hallmark


def test_hoc_reports_label_mismatch(tmp_path):
    spec = get_dataset("hoc")
    (tmp_path / "linkbert_json").mkdir()
    (tmp_path / "blurb_tsv").mkdir()
    vector = [1] + [0] * 9
    (tmp_path / "linkbert_json" / "dev.json").write_text(
        json.dumps({"id": "7", "sentence": "a b", "label": vector}) + "\n"
    )
    zero = ",".join(f"{i}_0" for i in range(10))
    (tmp_path / "blurb_tsv" / "dev.tsv").write_text(
        f"labels\tsentence\tindex\n{zero}\ta\t7_s0\n{zero}\tb\t7_s1\n"
    )
    data = read_split(spec, tmp_path, "dev")
    assert data.records[0]["labels"] == ["activating invasion and metastasis"]
    assert any("1 abstracts whose labels differ" in note and "7" in note for note in data.notes)


def test_pubmedqa_test_matches_official_ground_truth(shared_data, tmp_path):
    data = read(shared_data, "pubmedqa", "test")
    assert any("official" in note for note in data.notes)
    assert shared_data / "pubmedqa" / "official" / "test_ground_truth.json" in data.files
    # a changed label must be caught
    (tmp_path / "linkbert_json").mkdir()
    (tmp_path / "official").mkdir()
    row = {"id": "1", "sentence1": "q?", "sentence2": "c", "label": "yes"}
    (tmp_path / "linkbert_json" / "test.json").write_text(json.dumps(row) + "\n")
    (tmp_path / "official" / "test_ground_truth.json").write_text('{"1": "no"}')
    with pytest.raises(BlurbkitError, match=r"test\.json:1: label 'yes' of 1 disagrees"):
        read_split(get_dataset("pubmedqa"), tmp_path, "test")


def test_bioasq_keeps_distributed_whitespace(shared_data):
    records = read(shared_data, "bioasq", "train").records
    assert records[0]["id"] == "54e25eaaae9738404b000017"
    assert {r["label"] for r in records} == {"yes", "no"}
    assert sum(r["label"] == "yes" for r in records) == 552


def test_absent_optional_reader_fails_clearly_at_use_time(shared_data):
    from blurbkit.data import readers

    stub = readers._unavailable_reader(
        "the DDI reader (blurbkit.data.readers.ddi)", "import failed: no module"
    )
    with pytest.raises(SplitUnavailable, match="dataset 'ddi': the DDI reader .* is not installed"):
        stub(get_dataset("ddi"), shared_data / "ddi", "train", ReadOptions())
