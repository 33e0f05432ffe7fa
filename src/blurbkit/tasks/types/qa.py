"""Question answering (PubMedQA, BioASQ): [CLS] question [SEP] context [SEP], softmax over the
answers (yes/no/maybe), scored by accuracy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from blurbkit.tasks.types.base import Record, register
from blurbkit.tasks.types.by_id import IdTaskType


class QuestionAnswering(IdTaskType):
    record_fields = {"id": (str,), "question": (str,), "context": (str,), "label": (str,)}
    name = "qa"
    provides = ("sequence", "question_context", "single_label")  # what Figure 2 parts may require (models/: `requires`)
    title = "Question answering"
    metric = "accuracy"
    blurb_group = "Question Answering"
    unit = "questions"
    transform = "question_context"
    file_formats = ("pubmedqa", "bioasq")
    input_fields = ("question", "context")

    def passages(self, record: Record) -> Iterator[tuple[str, bool]]:
        yield record["context"], False  # the question is not abstract text

    def infer_fields(self, records: Sequence[dict]) -> dict[str, set[str]]:
        return {"labels": {r["label"] for r in records}}


register(QuestionAnswering())
