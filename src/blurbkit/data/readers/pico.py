"""EBM PICO in SciBERT's word-level form: ``token NN O TAG`` (4 space-separated columns), IO tags
(O, I-PAR, I-INT, I-OUT), ``-DOCSTART- (PMID)`` before each abstract, blank line between sentences.

Record ids are ``{PMID}_s{k}`` (k = sentence number inside the abstract): they do not depend on
the split, so an abstract moved by --pico-train-from-dev keeps its ids.

The train token file is not distributed here (SOURCE.md: only its PMID list is). Reading train
then fails with SplitUnavailable, unless ReadOptions.pico_train_from_dev = N: train becomes the
FIRST N abstracts of dev.txt in file order (deterministic, no seed to record) and dev the rest.
That is a local deviation from BLURB and every note about it says so.
"""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.readers import SplitUnavailable, split_file
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.readers.conll import DOCSTART, doc_id_of
from blurbkit.data.schema import Record, SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import read_lines
from blurbkit.tasks.registry import DatasetSpec


def check_pico_tag(tag: str, spec: DatasetSpec, path: Path, line: int) -> None:
    if tag == "O":
        return
    prefix, _, kind = tag.partition("-")
    types = spec.entity_types
    if prefix != "I" or not kind:
        raise BlurbkitError(f"unknown tag {tag!r} (PICO files use IO tags: O, I-TYPE)", path=path, line=line)
    if types and kind not in types:
        raise BlurbkitError(
            f"tag {tag!r} has PICO element {kind!r}, not one of {', '.join(types)}", path=path, line=line
        )


def read_pico_file(spec: DatasetSpec, path: Path, split: str) -> list[list[Record]]:
    """The file's abstracts, each a list of sentence records."""
    docs: list[list[Record]] = []
    doc_id: str | None = None
    tokens: list[str] = []
    tags: list[str] = []
    count = 0

    def close() -> None:
        nonlocal count
        if not tokens:
            return
        if not docs:
            docs.append([])  # sentences before any -DOCSTART-
        number = len(docs[-1])
        record_id = f"{doc_id}_s{number}" if doc_id else f"{spec.name}-{split}-{count}"
        docs[-1].append({"id": record_id, "doc_id": doc_id, "tokens": tokens[:], "tags": tags[:]})
        count += 1
        tokens.clear()
        tags.clear()

    for number, line in enumerate(read_lines(path), start=1):
        if line.startswith(DOCSTART):
            close()
            doc_id = doc_id_of(line)
            docs.append([])
            continue
        if not line.strip():
            close()
            continue
        fields = line.split(" ")
        if len(fields) != 4:
            raise BlurbkitError(
                f"expected 4 space-separated columns (token NN O TAG), found {len(fields)}",
                path=path,
                line=number,
            )
        check_pico_tag(fields[3], spec, path, number)
        tokens.append(fields[0])
        tags.append(fields[3])
    close()
    docs = [doc for doc in docs if doc]
    if not docs:
        raise BlurbkitError("no sentences", path=path)
    return docs


def _flat(docs: list[list[Record]]) -> list[Record]:
    return [record for doc in docs for record in doc]


def read_pico(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    carve = options.pico_train_from_dev
    train_path = split_file(spec, source_dir, "train")
    if train_path.exists() or split == "test":
        data = SplitData(_flat(read_pico_file(spec, path, split)), [path])
        if carve is not None and split != "test":
            data.notes.append(f"--pico-train-from-dev {carve} ignored: {train_path.name} is present")
        return data
    if carve is None:  # 0 is a value, refused below, not "not given"
        if split == "train":
            raise SplitUnavailable(
                f"dataset {spec.name!r}: the train split is not distributed here ({train_path} is absent; "
                "see SOURCE.md). Pass --pico-train-from-dev N to carve N dev abstracts into a local train "
                "split (a LOCAL DEVIATION from BLURB)"
            )
        return SplitData(_flat(read_pico_file(spec, path, split)), [path])

    dev_path = split_file(spec, source_dir, "dev")
    docs = read_pico_file(spec, dev_path, "dev")
    if not 0 < carve < len(docs):
        raise BlurbkitError(
            f"--pico-train-from-dev must be between 1 and {len(docs) - 1} ({dev_path.name} has {len(docs)} abstracts)"
        )
    deviation = (
        f"LOCAL DEVIATION from BLURB: {train_path.name} is not distributed, so train = the first {carve} abstracts "
        f"of {dev_path.name} (file order) and dev = its other {len(docs) - carve}; scores are not comparable "
        "with published EBM PICO results"
    )
    chosen = docs[:carve] if split == "train" else docs[carve:]
    return SplitData(_flat(chosen), [dev_path], [deviation])


READERS.register("pico")(read_pico)
