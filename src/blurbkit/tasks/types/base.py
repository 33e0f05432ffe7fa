"""The task-type contract. A task type is a registered part that declares everything the rest of
blurbkit needs to know about one kind of task, so no other package branches on its name:

- data facts: the canonical record it reads, the unit its datasets are counted in (``measure``,
  ``details``), what `datasets add` can infer from a user's files;
- the default Figure 2 parts (transform, featurizer, head) and whether long inputs are windowed
  (token tasks lose no word) or truncated;
- label handling (`LabelCodec`: gold labels -> training targets, head outputs -> predictions);
- predictions: their in-memory form, the file format, the official metric and how it is called;
- failed runs: the trivial predictor a fine-tuned model must beat (``trivial_predictions``, ``run_failed``);
- new text: raw inputs -> records, predictions -> results (what `Predictor` returns).

Two families share most of this: token-level tasks (tasks/types/token.py) and tasks predicted
per record id (tasks/types/by_id.py). A new task type is one module and one
``TASK_TYPES.register(...)`` call (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.arguments import JSON_KINDS, json_kind
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import unicode_problem
from blurbkit.metrics import METRICS
from blurbkit.metrics.decompose import DECOMPOSITIONS
from blurbkit.registry import Registry

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec

Record = dict[str, Any]
Example = dict[str, Any]


class InputError(BlurbkitError):
    """One `Predictor` input is not what the task takes; `index` says which (the CLI turns it into
    the input file's line)."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"input {index}: {problem}")
        self.index, self.problem = index, problem


class LabelCodec:
    """One model's label space: gold labels -> head targets, head outputs -> predictions."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.scheme: str | None = None  # token tasks: the tagging scheme the model learns

    def attach_labels(self, records: Sequence[Record], examples: list[Example]) -> None:
        for example in examples:
            example["labels"] = self.label_of(records[example["record_index"]])

    def label_of(self, record: Record) -> Any:
        try:
            return self.labels.index(str(record["label"]))
        except ValueError:
            raise BlurbkitError(f"record {record['id']}: label {record['label']!r} not in {self.labels}") from None

    def collect(self, records: Sequence[Record], examples: list[Example], outputs: list[Any]) -> Any:
        """Head outputs (one per example) -> predictions in the task type's in-memory form."""
        return {records[ex["record_index"]]["id"]: self.decode(out) for ex, out in zip(examples, outputs, strict=True)}

    def decode(self, output: Any) -> Any:
        return self.labels[output]


class TaskType:
    """Base class of every task type; the subclasses in this package fill it in."""

    name = ""
    title = ""
    metric = ""  # a name in blurbkit.metrics.METRICS
    blurb_group = ""  # the BLURB score's group (its six task types)
    unit = "instances"  # what `published` counts
    # Default Figure 2 parts (registered names in blurbkit.models)
    transform = "text"
    featurizer = "cls"
    head = "softmax"
    # Capabilities a Figure 2 part may require (its `requires`): the input level ("token" or
    # "sequence"), the input fields ("text", "text_pair", "question_context", "entity_pair") and the
    # target ("single_label", "multi_label", "score").
    provides: tuple[str, ...] = ()
    windowed = False  # True: long inputs become overlapping windows (no word lost); False: truncated
    prediction_suffix = "jsonl"
    file_formats: tuple[str, ...] = ()  # `datasets add --format` readers holding this task's data
    # The fields a canonical record (data/schema.py) must have, and their JSON kinds: a prepared
    # file edited by hand is named by line when it is read, not by a KeyError deep in training.
    record_fields: dict[str, tuple[type, ...]] = {"id": (str,)}

    def record_problem(self, spec: DatasetSpec, record: Record) -> str | None:
        """Why `record` is not a canonical record of this task type (None: it is)."""
        for name, kinds in self.record_fields.items():
            if name not in record:
                return f"no {name!r} field"
            value = record[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                expected = dict.fromkeys(JSON_KINDS[k] for k in kinds)  # int and float are both "a number"
                return f"{name!r} is {json_kind(value)}, not {' or '.join(expected)}"
        if "label" in self.record_fields and spec.labels and record["label"] not in spec.labels:
            return f"label {record['label']!r} is not one of {spec.name}'s labels ({', '.join(spec.labels)})"
        return None

    # ---- failed runs (fine-tuning stability, SPEC §4) -------------------------------------------
    def trivial_predictions(self, spec: DatasetSpec, train_records: Sequence[Record], records: Sequence[Record]) -> Any:
        """What a predictor without a model predicts for `records`, learnt from `train_records` alone:
        the majority class (relation, QA), no label that most training documents lack (HoC), the
        training mean (similarity, whose Pearson is then undefined), ``O`` for every word (NER, PICO)."""
        raise NotImplementedError(f"task type {self.name} has no trivial predictor")

    def run_failed(self, test: dict[str, Any]) -> bool:
        """Whether a fine-tuning run failed: its test score (the official metric's result dict) is
        no better than the trivial predictor's on the same test records. The one definition every
        stability table uses; per metric it means: entity / PICO / HoC F1 of 0 (their trivial
        predictors score 0), relation F1 at or below the majority class's (0 where the majority is no
        relation, as in ChemProt and DDI; GAD's is the positive class, 68.96 on its test set), QA
        accuracy at or below the majority class's, Pearson not
        computable (a constant prediction) or <= 0. A result without ``trivial_score`` (runs stored
        before it was recorded) is compared with 0."""
        score = test.get("score")
        if score is None or not math.isfinite(score) or test.get("undefined"):
            return True
        trivial = test.get("trivial_score")
        floor = 0.0 if trivial is None or not math.isfinite(trivial) else trivial
        return score <= floor + 1e-12

    # ---- data facts ---------------------------------------------------------------------------
    def measure(self, spec: DatasetSpec, records: Sequence[Record]) -> int:
        """A split's size in the unit `published` counts."""
        return len(records)

    def details(self, spec: DatasetSpec, records: Sequence[Record]) -> dict[str, int]:
        """Other sizes of a split, for explaining a count difference."""
        return {}

    def passages(self, record: Record) -> Iterator[tuple[str, bool]]:
        """The record's text, as (text, is one sentence) pieces (test-set decontamination of corpora)."""
        yield record["text"], True

    def placeholder_text(self, records: Sequence[Record]) -> bool:
        """True when the text has entities replaced by placeholders (@GENE$): matched by word windows only."""
        return False

    def infer_fields(self, records: Sequence[Record]) -> dict[str, set[str]]:
        """Registry fields a user's files imply (`datasets add`): entity_types, labels."""
        return {}

    def complete_registration(self, table: dict[str, Any], inferred: bool) -> None:
        """Check the user dataset table `datasets add` is about to write and fill in what it implies;
        called before the files are read (inferred=False) and after (inferred=True). One line on error."""

    # ---- training ------------------------------------------------------------------------------
    codec_class = LabelCodec

    def codec(self, spec: DatasetSpec, train_records: Sequence[Record] = (), scheme: str | None = None) -> LabelCodec:
        """The label codec a new model of `spec` trains with (labels from the registry or the data)."""
        if scheme is not None:
            raise BlurbkitError(f"--scheme applies to token-level datasets, not to {spec.name} ({self.name})")
        return self.codec_class(spec.labels)

    def saved_codec(self, labels: Sequence[str], scheme: str | None = None) -> LabelCodec:
        """The label codec of a saved model, from its recipe alone."""
        return self.codec_class(labels)

    def pair_facts(self, spec: DatasetSpec, train_records: Sequence[Record] = ()) -> dict[str, Any] | None:
        """What a model of an entity-pair task needs from its input to be used on raw text (recorded
        in the model directory as ``ModelRecipe.pairs``; blurbkit.Pipeline reads it): None for the
        other task types."""
        return None

    # ---- predictions (implemented by the two families) -----------------------------------------
    def check_predictions(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any,
                          scheme: str | None = None) -> Any:
        raise NotImplementedError

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any,
                      scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The official metric's positional and keyword arguments for checked predictions."""
        raise NotImplementedError(f"task type {self.name} does not say how its metric is called")

    def score(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any, scheme: str | None = None) -> dict[str, Any]:
        """The official metric of checked predictions (fractions; see blurbkit.metrics)."""
        args, kwargs = self.metric_inputs(spec, gold, predictions, scheme)
        return METRICS.get(self.metric)(*args, **kwargs)

    # ---- paired bootstrap (experiments/compare.py) ---------------------------------------------
    def bootstrap_units(self, spec: DatasetSpec, gold: Sequence[Record]) -> list[str]:
        """What a bootstrap over the test set resamples, one key per row of `unit_statistics`: rows
        with one key are drawn together. Default: each record (a relation instance, a pair, a question)."""
        return [str(record["id"]) for record in gold]

    def unit_statistics(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any,
                        scheme: str | None = None) -> tuple[list[str], list[list[float]]]:
        """(unit keys, additive counts per item) of checked predictions: `score_from_totals` of the
        summed counts is the official score (metrics/decompose.py)."""
        args, kwargs = self.metric_inputs(spec, gold, predictions, scheme)
        rows = DECOMPOSITIONS.get(self.metric).items(*args, **kwargs)
        return self.bootstrap_units(spec, gold), rows

    def score_from_totals(self, totals: Any) -> Any:
        """Scores (fractions) from summed `unit_statistics` counts (last axis), for many resamples at once."""
        return DECOMPOSITIONS.get(self.metric).from_totals(totals)

    def read_predictions(self, spec: DatasetSpec, gold: Sequence[Record], path: Path, lines: list[str],
                         scheme: str | None = None) -> Any:
        raise NotImplementedError

    def write_predictions(self, spec: DatasetSpec, records: Sequence[Record], predictions: Any, path: Path,
                          scheme: str | None = None) -> None:
        raise NotImplementedError

    # ---- new text ------------------------------------------------------------------------------
    def records_from_inputs(self, inputs: Sequence[str | dict[str, Any]], transform: Any = None) -> list[Record]:
        """`Predictor` inputs -> records: strings become the task's text field, dicts are fields.
        transform: the model's input transform (models/transforms*.py), whose attributes say what
        it reads (None: the task's default input form).

        Records are identified by their input position (an ``id`` field of an input is kept in the
        input, not used: two inputs with one id must still get their own results)."""
        records = []
        fields = self.input_fields_for(transform)
        for n, item in enumerate(inputs):
            if isinstance(item, str):
                record = {self.text_field: item}
            elif isinstance(item, dict):
                record = dict(item)
            else:
                raise InputError(n, f"expected a string or an object of fields, got {type(item).__name__}")
            for field in fields:
                if field not in record:
                    raise InputError(n, f"lacks the field {field!r} ({self.name} inputs have: {', '.join(fields)})")
                if not isinstance(record[field], str):
                    raise InputError(n, f"field {field!r} must be a string, not {record[field]!r:.60}")
                problem = unicode_problem(record[field])
                if problem:  # the tokenizer would fail with a TypeError deep inside
                    raise InputError(n, f"field {field!r}: {problem}")
            record["id"] = str(n)
            records.append(record)
        return records

    text_field = "text"
    input_fields: tuple[str, ...] = ("text",)

    def input_fields_for(self, transform: Any = None) -> tuple[str, ...]:
        """The string fields an input must have for a model reading it with `transform`."""
        return self.input_fields

    def results(self, inputs: Sequence[Any], records: Sequence[Record], predictions: Any) -> list[Any]:
        """Predictions -> one result per input, in input order (None for an input left out of
        the predictions: `Predictor` says why in a warning)."""
        return [predictions.get(r["id"]) for r in records]


TASK_TYPES: Registry[TaskType] = Registry("task type")


def register(task_type: TaskType) -> TaskType:
    """Register a task type instance under its name (one call per task type module)."""
    TASK_TYPES.register(task_type.name)(task_type)
    return task_type
