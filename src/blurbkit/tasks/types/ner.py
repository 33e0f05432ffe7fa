"""Named entity recognition: IOB2 tags per word, scored by exact-span entity F1 (conlleval)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from blurbkit.tagging import tags_to_spans
from blurbkit.tasks.types.base import Record, register
from blurbkit.tasks.types.token import TokenTaskType, file_scheme

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec


class NamedEntityRecognition(TokenTaskType):
    name = "ner"
    provides = ("token", "single_label")  # what Figure 2 parts may require (models/: `requires`)
    title = "Named entity recognition"
    metric = "entity_f1"
    blurb_group = "NER"
    unit = "entity mentions"
    native_scheme = "bio"
    file_formats = ("conll",)

    def measure(self, spec: DatasetSpec, records: Sequence[dict]) -> int:
        return sum(len(tags_to_spans(record["tags"])) for record in records)

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any, scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([r["tags"] for r in gold], predictions), {"scheme": "any", "pred_scheme": file_scheme(scheme)}


register(NamedEntityRecognition())
