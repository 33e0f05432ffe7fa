"""Cross-validation folds of a dataset that is distributed as folds (``files.folds`` in its registry
table, e.g. AIMed's document-disjoint ``test_{k}.json``): how many there are, and each fold's records."""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.load import is_prepared, resolve_data
from blurbkit.data.readers.aimed import fold_files
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec, all_datasets, get_dataset


def has_folds(spec: DatasetSpec) -> bool:
    return "folds" in spec.files


def fold_count(dataset: str, data: str | Path | None) -> int:
    """The number of fold files of `dataset` in its raw source folder; one line when it has none."""
    spec = get_dataset(dataset)
    if not has_folds(spec):
        with_folds = [name for name, other in all_datasets().items() if has_folds(other)]
        raise BlurbkitError(f"dataset {spec.name} has no cross-validation folds (it has fixed train/dev/test splits); "
                            f"datasets with folds: {', '.join(with_folds) or 'none'}")
    if spec.source is not None:
        return len(fold_files(spec, spec.source))
    root = resolve_data(data)
    if is_prepared(root):
        raise BlurbkitError("cross-validation reads every fold: pass the raw source folder with --data "
                            "(a prepared directory holds the splits of one fold)", path=root)
    return len(fold_files(spec, root / spec.name))
