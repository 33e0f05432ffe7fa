"""Task types predicted per record id (relation, similarity, document classification, QA).

Predictions in memory: a dict id -> prediction. Prediction files: JSON lines
``{"id": ..., "prediction": ...}``, one per gold id (other keys are ignored). What a prediction
may be is the task type's `normalize`; how a prediction id finds its gold item is `id_key`
(document classification merges sentence ids like ``PMID_s3`` into their abstract).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write, parse_jsonl
from blurbkit.tasks.types.base import Record, TaskType

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec


def label_name(spec: DatasetSpec, value: Any, *, index_ok: bool = False) -> str:
    """A label given by name (or, where `index_ok`, by index) as its name; ValueError if unknown."""
    labels = spec.labels
    if index_ok and isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(labels):
            return labels[value]
        raise ValueError(f"label index {value} is out of range 0..{len(labels) - 1}")
    if isinstance(value, int) and not isinstance(value, bool) and str(value) in labels:
        return str(value)  # GAD / binary labels "0" / "1" written as JSON numbers
    if not isinstance(value, str) or (labels and value not in labels):
        raise ValueError(f"unknown label {value!r} (known: {', '.join(labels)})")
    return value


class IdTaskType(TaskType):
    def normalize(self, spec: DatasetSpec, value: Any) -> Any:
        """One prediction in canonical form; ValueError if it is not a prediction of this task."""
        return label_name(spec, value)

    def id_key(self, prediction_id: str) -> str:
        """The gold id a prediction id belongs to."""
        return prediction_id

    def trivial_predictions(self, spec: DatasetSpec, train_records: Sequence[Record], records: Sequence[Record]) -> Any:
        """The majority training label for every record (ties: the first label of the dataset's list)."""
        counts = Counter(str(record["label"]) for record in train_records)
        order = {label: i for i, label in enumerate(spec.labels)}
        majority = min(counts, key=lambda label: (-counts[label], order.get(label, len(order)), label))
        return {str(record["id"]): majority for record in records}

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any,
                      scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([str(record["label"]) for record in gold], [predictions[str(record["id"])] for record in gold]), {}

    # ---- checking, reading and writing ---------------------------------------------------------
    def _known(self, gold: Sequence[Record]) -> Any:
        """What `id_problem` checks prediction ids against (default: the set of gold id keys)."""
        return {self.id_key(str(record["id"])) for record in gold}

    def id_problem(self, spec: DatasetSpec, known: Any, pid: str) -> str | None:
        """Why `pid` is not an id of the gold split (None: it is)."""
        if self.id_key(pid) not in known:
            return f"unknown id {pid!r} (not in the gold {spec.name} split)"
        return None

    def _missing(self, gold: Sequence[Record], predicted: Mapping[str, Any]) -> list[str]:
        covered = {self.id_key(pid) for pid in predicted}
        return [str(r["id"]) for r in gold if self.id_key(str(r["id"])) not in covered]

    def _no_missing(self, gold: Sequence[Record], predicted: Mapping[str, Any], path: Path | None = None) -> None:
        missing = self._missing(gold, predicted)
        if missing:
            raise BlurbkitError(
                f"no prediction for {len(missing)} of {len(gold)} gold ids (first: {', '.join(missing[:5])})", path=path
            )

    def check_predictions(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any,
                          scheme: str | None = None) -> dict[str, Any]:
        if not isinstance(predictions, Mapping):
            raise BlurbkitError(f"{spec.name}: predictions must be a dict id -> prediction")
        known = self._known(gold)
        checked = {}
        for pid, value in predictions.items():
            problem = self.id_problem(spec, known, str(pid))
            if problem:
                raise BlurbkitError(f"prediction for {problem}")
            try:
                checked[str(pid)] = self.normalize(spec, value)
            except ValueError as err:
                raise BlurbkitError(f"prediction for id {pid!r}: {err}") from None
        self._no_missing(gold, checked)
        return checked

    def read_predictions(self, spec: DatasetSpec, gold: Sequence[Record], path: Path, lines: list[str],
                         scheme: str | None = None) -> dict[str, Any]:
        known = self._known(gold)
        predictions: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for number, obj in parse_jsonl(lines, path):
            if "id" not in obj or "prediction" not in obj:
                raise BlurbkitError('expected a JSON object {"id": ..., "prediction": ...}', path=path, line=number)
            pid = obj["id"]
            if isinstance(pid, bool) or not isinstance(pid, str | int):
                raise BlurbkitError(f"id must be a string, got {pid!r}", path=path, line=number)
            pid = str(pid)
            if pid in first_line:
                raise BlurbkitError(f"duplicate id {pid!r} (first on line {first_line[pid]})", path=path, line=number)
            problem = self.id_problem(spec, known, pid)
            if problem:
                raise BlurbkitError(problem, path=path, line=number)
            try:
                predictions[pid] = self.normalize(spec, obj["prediction"])
            except ValueError as err:
                raise BlurbkitError(f"id {pid!r}: {err}", path=path, line=number) from None
            first_line[pid] = number
        self._no_missing(gold, predictions, path)
        return predictions

    def write_predictions(self, spec: DatasetSpec, records: Sequence[Record], predictions: Any, path: Path,
                          scheme: str | None = None) -> None:
        checked = self.check_predictions(spec, records, predictions)
        position = {self.id_key(str(record["id"])): i for i, record in enumerate(records)}
        order: Callable[[str], int] = lambda pid: position[self.id_key(pid)]  # noqa: E731
        with atomic_write(path) as handle:
            # Gold order; ids of one abstract (HoC sentences) keep the caller's order.
            for pid in sorted(checked, key=order):
                handle.write(json.dumps({"id": pid, "prediction": checked[pid]}, ensure_ascii=False) + "\n")
