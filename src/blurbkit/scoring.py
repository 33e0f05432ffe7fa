"""Score predictions against gold records, and read / write prediction files.

Predictions in memory (what the fine-tuning engine passes):
- ner / pico: a list of tag lists, one per gold record, aligned with its tokens.
- everything else: a dict id -> prediction: a label string (relation, qa; GAD also takes 0/1),
  a float (similarity), a list of hallmark names or indices (doc_classification; sentence ids
  like ``PMID_s3`` are merged into their abstract).

Prediction files:
- ner / pico: the gold sentences' ``token<TAB>tag`` lines with the predicted tag, a blank line
  after each sentence (one sentence = one canonical record). ``-DOCSTART-`` lines and repeated
  blank lines are ignored; both mark a sentence boundary.
- everything else: JSON lines ``{"id": ..., "prediction": ...}``, one per gold id (other keys
  are ignored).

What a predicted tag may be (anything else is rejected, naming the file and line): ``O`` or
``P-TYPE`` where P is a prefix of the tagging scheme (IOB2 by default, which includes the IO
tags; ``scheme="iobes"`` / ``"bioul"`` for those) and TYPE one of the dataset's entity types.
Sequences conlleval accepts are accepted as they are, e.g. ``I-X`` after ``O`` starts a chunk.

Scores are fractions (0-1; Pearson -1..1); ``blurbkit score`` takes percentages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from blurbkit.data.schema import Record
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write, parse_jsonl, read_lines
from blurbkit.metrics import METRICS, doc_key, tag_problem
from blurbkit.metrics.entity import SCHEMES
from blurbkit.tasks.registry import DatasetSpec

Predictions = list[list[str]] | dict[str, Any]
DEFAULT_SCHEME = "iob2"


# ---- validation shared by in-memory predictions and files -------------------------------------


def _entity_types(spec: DatasetSpec, gold_records: Sequence[Record]) -> set[str]:
    """Declared entity types plus any the gold tags use (a user dataset may declare none)."""
    found = {tag.partition("-")[2] for record in gold_records for tag in record["tags"] if tag != "O"}
    return set(spec.entity_types) | found


def _scheme(scheme: str | None) -> str:
    scheme = (scheme or DEFAULT_SCHEME).lower()
    if scheme not in SCHEMES or scheme == "any":
        known = ", ".join(name for name in SCHEMES if name != "any")
        raise BlurbkitError(f"unknown tagging scheme {scheme!r} (one of {known})")
    return scheme


def normalize_prediction(spec: DatasetSpec, value: Any) -> Any:
    """One prediction in canonical form (label name, float or sorted list of names); ValueError if bad."""
    if spec.task_type == "similarity":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"prediction must be a finite number, got {value!r}")
        return float(value)
    if spec.task_type == "doc_classification":
        if not isinstance(value, list):
            raise ValueError(f"prediction must be a list of labels (names or indices), got {value!r}")
        return sorted({_label(spec, item, index_ok=True) for item in value}, key=_label_order(spec))
    return _label(spec, value, index_ok=False)


def _label(spec: DatasetSpec, value: Any, *, index_ok: bool) -> str:
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


def _label_order(spec: DatasetSpec) -> Any:
    position = {label: i for i, label in enumerate(spec.labels)}
    return lambda label: (position.get(label, len(position)), label)


def _id_key(spec: DatasetSpec) -> Any:
    """How a prediction id finds its gold item: HoC merges sentence ids into their abstract."""
    return doc_key if spec.task_type == "doc_classification" else str


def _missing_ids(spec: DatasetSpec, gold_records: Sequence[Record], predicted: Any) -> list[str]:
    key = _id_key(spec)
    covered = {key(pid) for pid in predicted}
    return [str(r["id"]) for r in gold_records if key(str(r["id"])) not in covered]


def _check_token_predictions(
    spec: DatasetSpec, gold_records: Sequence[Record], predictions: Any, scheme: str
) -> list[list[str]]:
    if isinstance(predictions, str | Mapping) or not isinstance(predictions, Sequence):
        raise BlurbkitError(f"{spec.name}: predictions must be a list of tag lists, one per gold sentence")
    if len(predictions) != len(gold_records):
        raise BlurbkitError(
            f"{spec.name}: {len(predictions)} predicted tag sequences for {len(gold_records)} gold sentences"
        )
    types = _entity_types(spec, gold_records)
    for record, tags in zip(gold_records, predictions, strict=True):
        if isinstance(tags, str) or not isinstance(tags, Sequence):
            raise BlurbkitError(
                f"record {record['id']}: predicted tags must be a list, got {type(tags).__name__}"
            )
        if len(tags) != len(record["tokens"]):
            raise BlurbkitError(
                f"record {record['id']}: {len(tags)} predicted tags for {len(record['tokens'])} tokens"
            )
        for number, tag in enumerate(tags, start=1):
            problem = (
                tag_problem(tag, scheme, types) if isinstance(tag, str) else f"tag {tag!r} is not a string"
            )
            if problem:
                raise BlurbkitError(f"record {record['id']}, token {number}: {problem}")
    return [list(tags) for tags in predictions]


def _check_id_predictions(
    spec: DatasetSpec, gold_records: Sequence[Record], predictions: Any
) -> dict[str, Any]:
    if not isinstance(predictions, Mapping):
        raise BlurbkitError(f"{spec.name}: predictions must be a dict id -> prediction")
    key = _id_key(spec)
    known = {key(str(record["id"])) for record in gold_records}
    checked = {}
    for pid, value in predictions.items():
        if key(str(pid)) not in known:
            raise BlurbkitError(f"prediction for unknown id {pid!r} (not in the gold {spec.name} split)")
        try:
            checked[str(pid)] = normalize_prediction(spec, value)
        except ValueError as err:
            raise BlurbkitError(f"prediction for id {pid!r}: {err}") from None
    missing = _missing_ids(spec, gold_records, checked)
    if missing:
        raise BlurbkitError(
            f"no prediction for {len(missing)} of {len(gold_records)} gold ids (first: {', '.join(missing[:5])})"
        )
    return checked


# ---- scoring ----------------------------------------------------------------------------------


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
    metric = METRICS.get(spec.metric)
    try:
        if spec.is_token_task:
            scheme = _scheme(scheme)
            pred = _check_token_predictions(spec, gold_records, predictions, scheme)
            gold = [record["tags"] for record in gold_records]
            if spec.task_type == "ner":
                result = metric(gold, pred, scheme="any", pred_scheme=scheme)
            else:
                result = metric(gold, pred, elements=spec.entity_types or ("PAR", "INT", "OUT"))
        else:
            pred = _check_id_predictions(spec, gold_records, predictions)
            result = _score_by_id(spec, metric, gold_records, pred)
    except ValueError as err:  # a malformed gold record: the metric functions raise ValueError
        raise BlurbkitError(f"{spec.name}: cannot score: {err}") from None
    return {"dataset": spec.name, "split": split, "metric": spec.metric, **result, "n": len(gold_records)}


def _score_by_id(
    spec: DatasetSpec, metric: Any, gold_records: Sequence[Record], pred: dict[str, Any]
) -> dict[str, Any]:
    ids = [str(record["id"]) for record in gold_records]
    if spec.task_type == "doc_classification":
        gold = {}
        for record in gold_records:
            try:
                gold[str(record["id"])] = normalize_prediction(spec, list(record["labels"]))
            except ValueError as err:
                raise BlurbkitError(f"gold record {record['id']}: {err}") from None
        return metric(gold, pred)
    if spec.task_type == "similarity":
        return metric([float(record["score"]) for record in gold_records], [pred[i] for i in ids])
    gold_labels = [str(record["label"]) for record in gold_records]
    if spec.task_type == "relation":
        return metric(gold_labels, [pred[i] for i in ids], negative_label=spec.negative_label)
    return metric(gold_labels, [pred[i] for i in ids])


# ---- prediction files -------------------------------------------------------------------------


def read_prediction_file(
    spec: DatasetSpec, gold_records: Sequence[Record], path: str | Path, *, scheme: str | None = None
) -> Predictions:
    """Read and check a prediction file against the gold records (see the module docstring)."""
    lines = read_lines(path)
    if spec.is_token_task:
        return _read_token_file(spec, gold_records, Path(path), lines, _scheme(scheme))
    return _read_jsonl_file(spec, gold_records, Path(path), lines)


def _read_token_file(
    spec: DatasetSpec, gold_records: Sequence[Record], path: Path, lines: list[str], scheme: str
) -> list[list[str]]:
    targets = [i for i, record in enumerate(gold_records) if record["tokens"]]  # empty ones have no lines
    predictions: list[list[str]] = [[] for _ in gold_records]
    types = _entity_types(spec, gold_records)
    sentence, position, open_sentence = 0, 0, False

    def close(number: int) -> None:
        nonlocal sentence, position, open_sentence
        tokens = gold_records[targets[sentence]]["tokens"]
        if position < len(tokens):
            where = f"sentence {sentence + 1} (gold id {gold_records[targets[sentence]]['id']})"
            raise BlurbkitError(
                f"{where} ends after {position} tokens; gold has {len(tokens)}", path=path, line=number
            )
        sentence, position, open_sentence = sentence + 1, 0, False

    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if open_sentence:
                close(number)
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise BlurbkitError(
                f"expected 2 tab-separated columns (token, tag), found {len(fields)}", path=path, line=number
            )
        if sentence >= len(targets):
            raise BlurbkitError(
                f"more sentences than the gold split's {len(targets)}", path=path, line=number
            )
        record = gold_records[targets[sentence]]
        token, tag = fields[0], fields[1].strip()
        where = f"sentence {sentence + 1} (gold id {record['id']}), token {position + 1}"
        if position >= len(record["tokens"]):
            raise BlurbkitError(
                f"{where}: gold sentence has only {len(record['tokens'])} tokens", path=path, line=number
            )
        if token != record["tokens"][position]:
            raise BlurbkitError(
                f"{where}: token {token!r} differs from gold {record['tokens'][position]!r}",
                path=path,
                line=number,
            )
        problem = tag_problem(tag, scheme, types)
        if problem:
            raise BlurbkitError(f"{where}: {problem}", path=path, line=number)
        predictions[targets[sentence]].append(tag)
        position, open_sentence = position + 1, True
    if open_sentence:
        close(len(lines))
    if sentence < len(targets):
        raise BlurbkitError(
            f"file ends after {sentence} sentences; the gold split has {len(targets)}", path=path
        )
    return predictions


def _read_jsonl_file(
    spec: DatasetSpec, gold_records: Sequence[Record], path: Path, lines: list[str]
) -> dict[str, Any]:
    key = _id_key(spec)
    known = {key(str(record["id"])) for record in gold_records}
    predictions: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    for number, obj in parse_jsonl(lines, path):
        if "id" not in obj or "prediction" not in obj:
            raise BlurbkitError(
                'expected a JSON object {"id": ..., "prediction": ...}', path=path, line=number
            )
        pid = obj["id"]
        if isinstance(pid, bool) or not isinstance(pid, str | int):
            raise BlurbkitError(f"id must be a string, got {pid!r}", path=path, line=number)
        pid = str(pid)
        if pid in first_line:
            raise BlurbkitError(
                f"duplicate id {pid!r} (first on line {first_line[pid]})", path=path, line=number
            )
        if key(pid) not in known:
            raise BlurbkitError(
                f"unknown id {pid!r} (not in the gold {spec.name} split)", path=path, line=number
            )
        try:
            predictions[pid] = normalize_prediction(spec, obj["prediction"])
        except ValueError as err:
            raise BlurbkitError(f"id {pid!r}: {err}", path=path, line=number) from None
        first_line[pid] = number
    missing = _missing_ids(spec, gold_records, predictions)
    if missing:
        raise BlurbkitError(
            f"no prediction for {len(missing)} of {len(gold_records)} gold ids (first: {', '.join(missing[:5])})",
            path=path,
        )
    return predictions


def _unwritable(token: str) -> bool:
    """Tokens the line format cannot carry: they would split a line or read as a boundary."""
    return any(c in token for c in "\t\n\r") or token.startswith("-DOCSTART-")


def write_predictions(
    spec: DatasetSpec,
    records: Sequence[Record],
    predictions: Predictions,
    path: str | Path,
    *,
    scheme: str | None = None,
) -> Path:
    """Write `predictions` in the file format `read_prediction_file` reads back, atomically."""
    path = Path(path)
    if spec.is_token_task:
        tags = _check_token_predictions(spec, records, predictions, _scheme(scheme))
        for record in records:
            bad = next((t for t in record["tokens"] if _unwritable(t)), None)
            if bad is not None:
                raise BlurbkitError(f"record {record['id']}: token {bad!r} cannot be written as a token line")
        with atomic_write(path) as handle:
            for record, sentence in zip(records, tags, strict=True):
                if record["tokens"]:
                    handle.writelines(
                        f"{token}\t{tag}\n" for token, tag in zip(record["tokens"], sentence, strict=True)
                    )
                    handle.write("\n")
        return path
    checked = _check_id_predictions(spec, records, predictions)
    key = _id_key(spec)
    position = {key(str(record["id"])): i for i, record in enumerate(records)}
    with atomic_write(path) as handle:
        # Gold order; ids of one abstract (HoC sentences) keep the caller's order.
        for pid in sorted(checked, key=lambda pid: position[key(pid)]):
            handle.write(json.dumps({"id": pid, "prediction": checked[pid]}, ensure_ascii=False) + "\n")
    return path


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
    """Score a prediction file on a dataset's gold split (``data``: a prepared dir or raw data folder)."""
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset(dataset)
    if not Path(predictions_path).is_file():
        raise BlurbkitError("file not found", path=predictions_path)
    gold = load_gold(spec.name, split, data, options)
    predictions = read_prediction_file(spec, gold, predictions_path, scheme=scheme)
    result = score_predictions(spec, gold, predictions, split=split, scheme=scheme)
    return {**result, "predictions": str(predictions_path)}
