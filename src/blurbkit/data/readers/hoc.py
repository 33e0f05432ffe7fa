"""HoC, BLURB split. The unit is the abstract (BLURB scores per abstract), read from LinkBERT's
document-level JSON lines (``{"id": PMID, "sentence": abstract, "label": [10 ints]}``).

BLURB's sentence-level TSV (header ``labels<TAB>sentence<TAB>index``, labels ``0_x,...,9_x``, index
``PMID_sN``) is attached to each abstract as ``sentences``, in file order, when it is present
(``files.{split}_sentences``, default ``blurb_tsv/{split}.tsv``). An abstract's labels must be the
union of its sentences' labels; every disagreement is reported in the split's notes (none in the
distributed files). Label names are the dataset's ``labels`` in index order.
"""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.readers import jsonl_rows, split_file, tsv_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import Record, SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec

SENTENCE_HEADER = ("labels", "sentence", "index")
SHOW = 5  # ids listed in a note before "..."


def _names(vector: list[int], spec: DatasetSpec, path: Path, line: int) -> list[str]:
    if (
        not isinstance(vector, list)
        or len(vector) != len(spec.labels)
        or any(v not in (0, 1) for v in vector)
    ):
        raise BlurbkitError(
            f"label must be a list of {len(spec.labels)} 0/1 values, found {vector!r}", path=path, line=line
        )
    return [name for name, value in zip(spec.labels, vector, strict=True) if value == 1]


def _sentence_labels(raw: str, spec: DatasetSpec, path: Path, line: int) -> list[str]:
    """``0_0,1_1,...`` -> the names of the labels set to 1 (every index once, in order)."""
    pairs = [item.partition("_") for item in raw.split(",")]
    if [index for index, _, _ in pairs] != [str(i) for i in range(len(spec.labels))] or any(
        v not in ("0", "1") for _, _, v in pairs
    ):
        raise BlurbkitError(
            f"labels must be 0_x,...,{len(spec.labels) - 1}_x with x in 0/1, found {raw[:60]!r}",
            path=path,
            line=line,
        )
    return [spec.labels[i] for i, (_, _, value) in enumerate(pairs) if value == "1"]


def read_sentences(spec: DatasetSpec, path: Path) -> dict[str, list[Record]]:
    by_doc: dict[str, list[Record]] = {}
    for number, (labels, text, index) in tsv_rows(path, 3, header=SENTENCE_HEADER):
        doc, sep, _ = index.rpartition("_s")
        if not sep or not doc:
            raise BlurbkitError(f"index {index!r} is not PMID_sN", path=path, line=number)
        by_doc.setdefault(doc, []).append(
            {"id": index, "text": text, "labels": _sentence_labels(labels, spec, path, number)}
        )
    return by_doc


def _listed(ids: list[str]) -> str:
    return ", ".join(ids[:SHOW]) + (", ..." if len(ids) > SHOW else "")


def read_hoc(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    if not spec.labels:
        raise BlurbkitError(f"dataset {spec.name!r}: a document classification dataset needs `labels`")
    records: list[Record] = []
    for number, row in jsonl_rows(path, ("id", "sentence", "label"), texts=("sentence",)):
        records.append(
            {
                "id": str(row["id"]),
                "text": row["sentence"],
                "labels": _names(row["label"], spec, path, number),
            }
        )
    data = SplitData(records, [path])

    sentence_path = source_dir / spec.files.get(f"{split}_sentences", f"blurb_tsv/{split}.tsv")
    if not sentence_path.exists():
        data.notes.append(f"no sentence-level file ({sentence_path.name}); records carry no 'sentences'")
        return data
    data.files.append(sentence_path)
    by_doc = read_sentences(spec, sentence_path)
    mismatched, without = [], []
    for record in records:
        sentences = by_doc.pop(record["id"], None)
        if sentences is None:
            without.append(record["id"])
            continue
        record["sentences"] = sentences
        union = {label for sentence in sentences for label in sentence["labels"]}
        if union != set(record["labels"]):
            mismatched.append(record["id"])
    if mismatched:
        data.notes.append(
            f"{len(mismatched)} abstracts whose labels differ from the union of their sentence labels "
            f"in {sentence_path.name} ({_listed(mismatched)}); the abstract-level labels are used"
        )
    if without:
        data.notes.append(
            f"{len(without)} abstracts have no sentences in {sentence_path.name} ({_listed(without)})"
        )
    if by_doc:
        data.notes.append(
            f"{sentence_path.name} has sentences of {len(by_doc)} abstracts not in {path.name} ({_listed(list(by_doc))})"
        )
    return data


READERS.register("hoc")(read_hoc)
