"""CoNLL NER files (Crichton et al. / BLURB): ``token<TAB>tag`` a line, IOB2 tags, blank line between
sentences; JNLPBA puts a ``-DOCSTART-`` line before each abstract.

-DOCSTART- lines are dropped (they are not tokens) and used to number documents: ``doc_id`` is the
id in ``-DOCSTART- (ID)`` when there is one, else ``{dataset}-{split}-d{n}``; files without
-DOCSTART- give ``doc_id = None``. Record ids are ``{dataset}-{split}-{n}``, n = sentence number
in file order from 0.

Gold must be valid IOB2: none of the five BLURB NER sets has an I- tag after O or after a tag of
another type (checked on all 15 files), so such a tag is rejected as a corrupt file rather than
silently repaired.
"""

from __future__ import annotations

import re
from pathlib import Path

from blurbkit.data.readers import split_file
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import Record, SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import read_lines
from blurbkit.tagging import tags_to_spans
from blurbkit.tasks.registry import DatasetSpec

DOCSTART = "-DOCSTART-"
_DOC_ID = re.compile(r"-DOCSTART-\s*\(([^)]+)\)")


def doc_id_of(line: str) -> str | None:
    match = _DOC_ID.match(line)
    return match.group(1) if match else None


def check_tag(tag: str, previous: str, spec: DatasetSpec, path: Path, line: int) -> None:
    """An IOB2 tag of a known entity type that may follow `previous`."""
    if tag == "O":
        return
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I") or not kind:
        raise BlurbkitError(f"unknown tag {tag!r} (IOB2 tags are O, B-TYPE, I-TYPE)", path=path, line=line)
    if spec.entity_types and kind not in spec.entity_types:
        raise BlurbkitError(
            f"tag {tag!r} has entity type {kind!r}, not one of the dataset's types ({', '.join(spec.entity_types)})",
            path=path,
            line=line,
        )
    if prefix == "I" and previous[2:] != kind:
        raise BlurbkitError(
            f"tag {tag!r} follows {previous!r}: an I- tag must continue a B-/I- of the same type (IOB2)",
            path=path,
            line=line,
        )


def entity_chunks(tags: list[str]) -> int:
    """Entity mentions in one tag sequence (BLURB's NER unit)."""
    return len(tags_to_spans(tags))


def read_conll(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    records: list[Record] = []
    tokens: list[str] = []
    tags: list[str] = []
    doc_id: str | None = None
    docs = 0

    def close() -> None:
        if tokens:
            records.append(
                {
                    "id": f"{spec.name}-{split}-{len(records)}",
                    "doc_id": doc_id,
                    "tokens": tokens[:],
                    "tags": tags[:],
                }
            )
            tokens.clear()
            tags.clear()

    for number, line in enumerate(read_lines(path), start=1):
        if line.startswith(DOCSTART):
            close()
            doc_id = doc_id_of(line) or f"{spec.name}-{split}-d{docs}"
            docs += 1
            continue
        if not line.strip():
            close()
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise BlurbkitError(
                f"expected 2 tab-separated columns (token<TAB>tag), found {len(fields)}",
                path=path,
                line=number,
            )
        token, tag = fields[0], fields[1].strip()
        if not token.strip():
            raise BlurbkitError("empty token", path=path, line=number)
        check_tag(tag, tags[-1] if tags else "O", spec, path, number)
        tokens.append(token)
        tags.append(tag)
    close()
    if not records:
        raise BlurbkitError("no sentences (only -DOCSTART- or blank lines)", path=path)
    return SplitData(records, [path])


READERS.register("conll")(read_conll)
