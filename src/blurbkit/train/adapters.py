"""Task adapters: the small amount of task-specific glue around the one training engine.

An adapter knows a task type's default parts (transform, featurizer, head), its label space,
how to attach gold labels to encoded examples, and how to turn head outputs back into
predictions in the `blurbkit evaluate` format (tag lists for token tasks, id -> value otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.models.transforms import Example
from blurbkit.registry import Registry
from blurbkit.tasks.registry import DatasetSpec

ADAPTERS: Registry[type[TaskAdapter]] = Registry("task adapter")


class TaskAdapter:
    transform = "text"
    featurizer = "cls"
    head = "softmax"

    def __init__(self, spec: DatasetSpec, train_records: Sequence[dict] = ()) -> None:
        self.spec = spec
        self.labels = list(spec.labels)

    def attach_labels(self, records: Sequence[dict], examples: list[Example]) -> None:
        for example in examples:
            example["labels"] = self.label_of(records[example["record_index"]])

    def label_of(self, record: dict) -> Any:
        try:
            return self.labels.index(str(record["label"]))
        except ValueError:
            raise BlurbkitError(f"record {record['id']}: label {record['label']!r} not in {self.labels}") from None

    def collect(self, records: Sequence[dict], examples: list[Example], outputs: list[Any]) -> Any:
        """Head outputs (one per example) -> predictions for `evaluate.score_predictions`."""
        return {records[ex["record_index"]]["id"]: self.decode(out) for ex, out in zip(examples, outputs, strict=True)}

    def decode(self, output: Any) -> Any:
        return self.labels[output]


@ADAPTERS.register("relation")
class RelationAdapter(TaskAdapter):
    """Relation extraction: dummified text, [CLS], softmax over relation labels."""


@ADAPTERS.register("qa")
class QuestionAnsweringAdapter(TaskAdapter):
    transform = "question_context"


@ADAPTERS.register("similarity")
class SimilarityAdapter(TaskAdapter):
    transform = "sentence_pair"
    head = "regression"

    def __init__(self, spec: DatasetSpec, train_records: Sequence[dict] = ()) -> None:
        super().__init__(spec, train_records)
        self.labels = ["score"]

    def label_of(self, record: dict) -> float:
        return float(record["score"])

    def decode(self, output: float) -> float:
        return float(output)


@ADAPTERS.register("doc_classification")
class MultiLabelAdapter(TaskAdapter):
    head = "sigmoid"

    def label_of(self, record: dict) -> list[float]:
        gold = set(record["labels"])
        unknown = gold - set(self.labels)
        if unknown:
            raise BlurbkitError(f"record {record['id']}: unknown labels {sorted(unknown)}")
        return [1.0 if label in gold else 0.0 for label in self.labels]

    def decode(self, output: list[int]) -> list[str]:
        return [self.labels[i] for i in output]


@ADAPTERS.register("token")
class TokenAdapter(TaskAdapter):
    """NER and PICO: word-level tags from each word's first subword; windows merged back."""

    transform = "tokens"
    featurizer = "first_subword"
    head = "softmax"

    PREFIXES = {"bio": ("B", "I"), "io": ("I",), "bioul": ("B", "I", "L", "U")}

    def __init__(self, spec: DatasetSpec, train_records: Sequence[dict] = (), scheme: str | None = None) -> None:
        self.spec = spec
        # Scores are always computed in the dataset's own scheme; `scheme` is only what the
        # model learns to predict (converted to and from the native tags here).
        self.native = "io" if spec.task_type == "pico" else "bio"
        self.scheme = scheme or self.native
        if self.scheme not in self.PREFIXES:
            raise BlurbkitError(f"unknown tagging scheme {self.scheme!r} (one of {', '.join(self.PREFIXES)})")
        types = list(spec.entity_types) or sorted(
            {tag[2:] for record in train_records for tag in record["tags"] if tag != "O"}
        )
        self.labels = ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in self.PREFIXES[self.scheme]]
        self._index = {tag: i for i, tag in enumerate(self.labels)}

    def _convert(self, tags: Sequence[str], source: str, target: str) -> list[str]:
        if source == target:
            return list(tags)
        from blurbkit.tagging import convert_tags

        return convert_tags(tags, source, target)

    def attach_labels(self, records: Sequence[dict], examples: list[Example]) -> None:
        for example in examples:
            tags = self._convert(records[example["record_index"]]["tags"], self.native, self.scheme)
            try:
                example["labels"] = [self._index[tags[w]] for w in example["word_index"]]
            except KeyError as err:
                raise BlurbkitError(
                    f"record {records[example['record_index']]['id']}: tag {err.args[0]!r} not in {self.labels}"
                ) from None

    def collect(self, records: Sequence[dict], examples: list[Example], outputs: list[Any]) -> list[list[str]]:
        # A word seen by several overlapping windows takes the prediction of the window in
        # which it sits farthest from an edge (most context on both sides).
        best: list[list[tuple[int, str] | None]] = [[None] * len(r["tokens"]) for r in records]
        for example, tags in zip(examples, outputs, strict=True):
            begin, end, _ = example["window"]
            row = best[example["record_index"]]
            for word, position, tag in zip(example["word_index"], example["word_positions"], tags, strict=True):
                absolute = begin + position - 1
                margin = min(absolute - begin, end - 1 - absolute)
                if row[word] is None or margin > row[word][0]:
                    row[word] = (margin, self.labels[tag])
        merged = [[cell[1] if cell else "O" for cell in row] for row in best]
        return [self._convert(tags, self.scheme, self.native) for tags in merged]


def adapter_for(spec: DatasetSpec, train_records: Sequence[dict] = (), scheme: str | None = None) -> TaskAdapter:
    if spec.is_token_task:
        return TokenAdapter(spec, train_records, scheme=scheme)
    if scheme is not None:
        raise BlurbkitError(f"--scheme applies to NER/PICO datasets, not to {spec.name} ({spec.task_type})")
    return ADAPTERS.get(spec.task_type)(spec, train_records)
