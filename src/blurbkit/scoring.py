"""Score predictions against gold records, and read / write prediction files.

Each task type (tasks/types/) says what its predictions are, in memory and in files, and how
its official metric is called; this module checks, dispatches and adds the common fields:
- token-level tasks (ner, pico): a list of tag lists, one per gold record; ``token<TAB>tag`` files;
- everything else: a dict id -> prediction (a label, a number, a list of labels); JSON lines
  ``{"id": ..., "prediction": ...}``.
Scores are fractions (0-1; Pearson -1..1); ``blurbkit score`` takes percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import check_input_file, read_lines
from blurbkit.tasks.registry import DatasetSpec

Record = dict[str, Any]
Predictions = list[list[str]] | dict[str, Any]


def score_predictions(
    spec: DatasetSpec,
    gold_records: Sequence[Record],
    predictions: Predictions,
    *,
    split: str | None = None,
    scheme: str | None = None,
) -> dict[str, Any]:
    """The official score of `predictions` on `gold_records`:
    ``{"dataset", "split", "metric", "score", "precision"?, "recall"?, ...extras, "n"}``."""
    task = spec.task
    checked = task.check_predictions(spec, gold_records, predictions, scheme)
    try:
        result = task.score(spec, gold_records, checked, scheme)
    except ValueError as err:  # a malformed gold record: the metric functions raise ValueError
        raise BlurbkitError(f"{spec.name}: cannot score: {err}") from None
    return {"dataset": spec.name, "split": split, "metric": spec.metric, **result, "n": len(gold_records)}


def unit_statistics(
    spec: DatasetSpec, gold_records: Sequence[Record], predictions: Predictions, *, scheme: str | None = None
) -> tuple[list[str], list[list[float]]]:
    """Checked predictions as (bootstrap unit per row, additive counts per row): the task type's
    `unit_statistics`; its `score_from_totals` of the column sums is `score_predictions`' score."""
    task = spec.task
    checked = task.check_predictions(spec, gold_records, predictions, scheme)
    try:
        return task.unit_statistics(spec, gold_records, checked, scheme)
    except ValueError as err:
        raise BlurbkitError(f"{spec.name}: cannot score: {err}") from None
    except NotImplementedError:
        raise BlurbkitError(f"{spec.name}: task type {task.name} has no per-item statistics for a paired bootstrap") from None


def read_prediction_file(
    spec: DatasetSpec, gold_records: Sequence[Record], path: str | Path, *, scheme: str | None = None
) -> Predictions:
    """Read and check a prediction file against the gold records (the task type's format)."""
    return spec.task.read_predictions(spec, gold_records, Path(path), read_lines(path), scheme)


def write_predictions(
    spec: DatasetSpec, records: Sequence[Record], predictions: Predictions, path: str | Path, *, scheme: str | None = None
) -> Path:
    """Write `predictions` in the file format `read_prediction_file` reads back, atomically."""
    path = Path(path)
    spec.task.write_predictions(spec, records, predictions, path, scheme)
    return path


def prediction_file_name(spec: DatasetSpec, split: str) -> str:
    return f"{split}.{spec.task.prediction_suffix}"


def load_gold(dataset: str, split: str, data: str | Path | None, options: Any) -> list[Record]:
    """The gold records of a split (data/load.py; imported here so scoring in memory needs no reader)."""
    from blurbkit.data.load import load_split

    return list(load_split(dataset, split, data=data, options=options))


def evaluate(
    dataset: str,
    split: str,
    predictions_path: str | Path,
    data: str | Path | None = None,
    *,
    scheme: str | None = None,
    options: Any = None,
) -> dict[str, Any]:
    """Score a prediction file on a dataset's gold split with its official metric (``data``: a
    prepared dir or raw data folder). Returns a dict: ``score`` (a fraction, 0.8657 = 86.57 in the
    papers' tables), the metric's name and parts (precision, recall, counts, per label), ``n``,
    and ``predictions`` (the file). Every gold id needs a prediction."""
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset(dataset)
    if not isinstance(predictions_path, str | Path):
        raise BlurbkitError(f"predictions_path must be a file path, not {predictions_path!r}")
    check_input_file(predictions_path)
    gold = load_gold(spec.name, split, data, options)
    predictions = read_prediction_file(spec, gold, predictions_path, scheme=scheme)
    result = score_predictions(spec, gold, predictions, split=split, scheme=scheme)
    return {**result, "predictions": str(predictions_path)}
