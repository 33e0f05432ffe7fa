"""ChemProt, BLURB split as SciFive distributes it: ``sentence<TAB>label_id``, no header, no ids.

Label ids map to names through ``label2id.tsv`` (``name<TAB>id``); the id indexes the dataset's
``labels`` in datasets.toml, and the names are cross-checked (label2id's ``0`` is BLURB's
``false``, the negative label). Without a label2id.tsv (a user dataset in this format) the label
column holds the label name itself. Ids: ``{dataset}-{split}-{n}``, n = row number from 0.
"""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.readers import check_label, placeholder_entities, split_file, tsv_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec

LABEL2ID = "label2id.tsv"


def read_label_map(spec: DatasetSpec, path: Path) -> dict[str, str]:
    """label2id.tsv as {id string: label name of the spec}."""
    mapping = {}
    for number, (name, index) in tsv_rows(path, 2):
        if not index.isdigit() or int(index) >= len(spec.labels):
            raise BlurbkitError(
                f"label id {index!r} is not an index into the {len(spec.labels)} labels",
                path=path,
                line=number,
            )
        label = spec.labels[int(index)]
        # SciFive writes the negative class as "0"; every other name must equal the spec's label.
        if name != label and not (name == "0" and label == spec.negative_label):
            raise BlurbkitError(
                f"label {name!r} has id {index}, but label {index} of {spec.name} is {label!r}",
                path=path,
                line=number,
            )
        mapping[index] = label
    return mapping


def read_chemprot(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    label_path = source_dir / LABEL2ID
    mapping = read_label_map(spec, label_path) if label_path.exists() else None
    records = []
    for number, (text, raw) in tsv_rows(path, 2):
        if mapping is not None:
            if raw not in mapping:
                raise BlurbkitError(f"unknown label id {raw!r} (not in {LABEL2ID})", path=path, line=number)
            label = mapping[raw]
        else:
            label = check_label(raw, spec, path, number)
        entities = placeholder_entities(text, spec, path, number)
        records.append(
            {"id": f"{spec.name}-{split}-{len(records)}", "text": text, "label": label, "entities": entities}
        )
    return SplitData(records, [path] + ([label_path] if mapping is not None else []))


READERS.register("chemprot")(read_chemprot)
