"""GAD, BLURB split: header ``index<TAB>sentence<TAB>label``, one masked sentence a row, label 0/1.

Ids come from the index column (``gad-{split}-{index}``): the index restarts at 0 in every split,
so the split is part of the id.
"""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.readers import check_label, placeholder_entities, split_file, tsv_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec

HEADER = ("index", "sentence", "label")


def read_gad(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    records, seen = [], set()
    for number, (index, text, label) in tsv_rows(path, 3, header=HEADER):
        if index in seen:
            raise BlurbkitError(f"index {index!r} occurs twice", path=path, line=number)
        seen.add(index)
        records.append(
            {
                "id": f"{spec.name}-{split}-{index}",
                "text": text,
                "label": check_label(label, spec, path, number),
                "entities": placeholder_entities(text, spec, path, number),
            }
        )
    return SplitData(records, [path])


READERS.register("gad")(read_gad)
