"""DDI (BLURB split): train converted from the DDI 2013 XML corpus, dev/test from BLURB's own files.

BLURB does not distribute its DDI train.tsv. blurbkit rebuilds it from the raw corpus and BLURB's
split index with the rules in ``ddi_xml.py``; the same converter reproduces BLURB's dev.tsv and
test.tsv exactly, which ``compare_with_distributed`` (``python -m blurbkit.data.readers.ddi DIR``)
checks. Dev and test records are BLURB's files as distributed, with ``original`` added from the XML.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from blurbkit.data.readers import check_label, placeholder_entities, tsv_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.readers.ddi_xml import (
    Pair,
    convert_split,
    original,
    read_archive,
    read_index,
    to_record,
)
from blurbkit.data.schema import Record, SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec

FILES = {"train": "raw_corpus/DDIextraction_2013.tar.gz", "dev": "dev.tsv", "test": "test.tsv"}
PUBLISHED_TRAIN = 25296
DIFFERENCES = ("text_different", "label_different", "missing", "extra")


def index_path(source_dir: Path, split: str) -> Path:
    return source_dir / "blurb_split_index" / f"{split}_files.tsv"


def read_distributed(path: Path) -> list[tuple[int, str, str, str]]:
    """BLURB's id<TAB>sentence<TAB>label file as (line number, id, text, label) rows."""
    rows, seen = [], set()
    for number, (pair_id, text, label) in tsv_rows(path, 3):
        if pair_id in seen:
            raise BlurbkitError(f"id {pair_id} occurs twice", path=path, line=number)
        seen.add(pair_id)
        rows.append((number, pair_id, text, label))
    return rows


def _distributed_records(
    spec: DatasetSpec, rows: list[tuple[int, str, str, str]], path: Path, pairs: dict[str, Pair]
) -> list[Record]:
    records = []
    for number, pair_id, text, label in rows:
        label = check_label(label, spec, path, number)
        entities = placeholder_entities(text, spec, path, number)  # one @DRUG-DRUG$ counts twice
        record: Record = {"id": pair_id, "text": text, "label": label, "entities": entities}
        pair = pairs.get(pair_id)
        if pair is not None:
            if pair.e1.extent > pair.e2.extent:  # entity 1 first even when it comes later in the text
                record["entities"].reverse()
            record["original"] = original(pair)
        records.append(record)
    return records


def _offset_note(pairs: list[Pair]) -> str:
    count = sum(pair.offsets_disagree for pair in pairs)
    return (
        f"{count} instances mask a mention whose corpus charOffsets do not select its own text (corpus errors, "
        "mostly shifted by one character); they are used as given, as BLURB does (e.g. 'c@DRUG$in')"
    )


def read_ddi(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    if split not in ("train", "dev", "test"):
        raise BlurbkitError(f"DDI has no split {split!r}")
    files = FILES | spec.files
    tarball, index = source_dir / files["train"], index_path(source_dir, split)
    published = spec.published.get("train", PUBLISHED_TRAIN)
    pairs = convert_split(tarball, index)
    if split == "train":
        records = [to_record(pair) for pair in pairs]
        notes = [
            f"train built from the DDI 2013 XML corpus by blurbkit's converter, {len(records)} instances vs "
            f"{published} published (documents listed in {index.name}); the same converter reproduces BLURB's "
            "dev.tsv and test.tsv exactly (python -m blurbkit.data.readers.ddi, docs/ddi_conversion.md)",
            _offset_note(pairs),
        ]
        if len(records) != published:
            notes.append(f"train differs from the published count by {len(records) - published}")
        return SplitData(records, [tarball, index], notes)
    tsv = source_dir / files[split]
    by_id = {pair.id: pair for pair in pairs}
    records = _distributed_records(spec, read_distributed(tsv), tsv, by_id)
    same = sum(_converted_equal(by_id.get(record["id"]), record) for record in records)
    attached = sum("original" in record for record in records)
    notes = [
        f"{split}: BLURB's distributed {tsv.name} ({len(records)} instances); 'original' attached from the XML "
        f"corpus for {attached}; blurbkit's converter reproduces {same} of them identically"
    ]
    return SplitData(records, [tsv, tarball, index], notes)


# `python -m blurbkit.data.readers.ddi` runs this file a second time as __main__; registering only
# from the imported module keeps "ddi" from being registered twice.
if __name__ != "__main__":
    READERS.register("ddi")(read_ddi)


def _converted_equal(pair: Pair | None, record: Record) -> bool:
    if pair is None:
        return False
    converted = to_record(pair)
    return (converted["text"], converted["label"]) == (record["text"], record["label"])


def _text_reason(pair: Pair, converted: str, distributed: str) -> str:
    if converted.split() == distributed.split():
        return "whitespace only"
    if pair.offsets_disagree:
        return "corpus charOffsets do not select the mention's own text"
    return "placeholders placed differently"


def compare_split(source_dir: Path, split: str, archive: dict[str, bytes]) -> dict[str, Any]:
    """Convert one split from XML and compare with BLURB's file by id, text and label."""
    tsv, index = source_dir / FILES[split], index_path(source_dir, split)
    converted = {p.id: p for p in convert_split(source_dir / FILES["train"], index, archive)}
    distributed = {pair_id: (text, label) for _, pair_id, text, label in read_distributed(tsv)}
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in DIFFERENCES}
    identical = 0
    for pair_id, (text, label) in distributed.items():
        pair = converted.get(pair_id)
        if pair is None:
            found["missing"].append(
                {"id": pair_id, "reason": f"no such pair in the XML files of {index.name}"}
            )
            continue
        record = to_record(pair)
        if record["text"] != text:
            reason = _text_reason(pair, record["text"], text)
            found["text_different"].append(
                {"id": pair_id, "distributed": text, "converted": record["text"], "reason": reason}
            )
        if record["label"] != label:
            reason = "the pair's ddi/type attributes give another label"
            found["label_different"].append(
                {"id": pair_id, "distributed": label, "converted": record["label"], "reason": reason}
            )
        identical += (record["text"], record["label"]) == (text, label)
    for pair_id in sorted(converted.keys() - distributed.keys()):
        found["extra"].append({"id": pair_id, "reason": f"pair in the XML but not in {tsv.name}"})
    result: dict[str, Any] = {
        "distributed": len(distributed),
        "converted": len(converted),
        "identical": identical,
    }
    result |= {kind: len(items) for kind, items in found.items()}
    result["reasons"] = {
        kind: dict(Counter(item["reason"] for item in found[kind])) for kind in found if found[kind]
    }
    result["examples"] = {kind: found[kind][:3] for kind in found if found[kind]}
    result["corpus_offset_errors_reproduced"] = sum(pair.offsets_disagree for pair in converted.values())
    return result


def compare_with_distributed(source_dir: str | Path) -> dict[str, Any]:
    """dev/test converted from XML vs BLURB's dev.tsv/test.tsv, plus the converted train count."""
    source_dir = Path(source_dir)
    archive = read_archive(source_dir / FILES["train"])
    report: dict[str, Any] = {split: compare_split(source_dir, split, archive) for split in ("dev", "test")}
    train = convert_split(source_dir / FILES["train"], index_path(source_dir, "train"), archive)
    report["train"] = {
        "converted": len(train),
        "published": PUBLISHED_TRAIN,
        "documents": len(read_index(index_path(source_dir, "train"))),
        "corpus_offset_errors_reproduced": sum(pair.offsets_disagree for pair in train),
    }
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m blurbkit.data.readers.ddi DDI_SOURCE_DIR", file=sys.stderr)
        return 2
    try:
        print(json.dumps(compare_with_distributed(argv[0]), indent=2, ensure_ascii=False))
    except BlurbkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
