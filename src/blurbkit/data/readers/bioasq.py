"""BioASQ 7b yes/no, BLURB split: ``id<TAB>question<TAB>passage<TAB>label``, no header.

The question and passage are kept as distributed (BLURB's TSV keeps some leading/trailing spaces
that LinkBERT's JSON strips; SOURCE.md) so the input is exactly BLURB's.
"""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.readers import check_label, split_file, tsv_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec


def read_bioasq(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    records, seen = [], set()
    for number, (qid, question, context, label) in tsv_rows(path, 4):
        if qid in seen:
            raise BlurbkitError(f"question id {qid!r} occurs twice", path=path, line=number)
        seen.add(qid)
        records.append(
            {
                "id": qid,
                "question": question,
                "context": context,
                "label": check_label(label, spec, path, number),
            }
        )
    return SplitData(records, [path])


READERS.register("bioasq")(read_bioasq)
