"""Sentence similarity: a score per sentence pair ([CLS] s1 [SEP] s2 [SEP], linear regression,
mean-squared error), scored by Pearson correlation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from blurbkit.tasks.types.base import LabelCodec, Record, register
from blurbkit.tasks.types.by_id import IdTaskType

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec


class ScoreCodec(LabelCodec):
    def __init__(self, labels: Sequence[str] = ()) -> None:
        super().__init__(["score"])  # one regression output

    def label_of(self, record: dict) -> float:
        return float(record["score"])

    def decode(self, output: float) -> float:
        return float(output)


class SentenceSimilarity(IdTaskType):
    record_fields = {"id": (str,), "text_a": (str,), "text_b": (str,), "score": (int, float)}
    name = "similarity"
    provides = ("sequence", "text_pair", "score")  # what Figure 2 parts may require (models/: `requires`)
    title = "Sentence similarity"
    metric = "pearson"
    blurb_group = "Sentence Similarity"
    unit = "sentence pairs"
    transform = "sentence_pair"
    head = "regression"
    file_formats = ("biosses",)
    input_fields = ("text_a", "text_b")

    codec_class = ScoreCodec

    def passages(self, record: Record) -> Iterator[tuple[str, bool]]:
        yield record["text_a"], True
        yield record["text_b"], True

    def normalize(self, spec: DatasetSpec, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"prediction must be a finite number, got {value!r}")
        return float(value)

    def trivial_predictions(self, spec: DatasetSpec, train_records: Sequence[Record], records: Sequence[Record]) -> dict[str, float]:
        """The training mean for every pair: a constant, whose Pearson correlation is undefined."""
        mean = math.fsum(float(r["score"]) for r in train_records) / max(1, len(train_records))
        return {str(record["id"]): mean for record in records}

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any, scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([float(r["score"]) for r in gold], [predictions[str(r["id"])] for r in gold]), {}


register(SentenceSimilarity())
