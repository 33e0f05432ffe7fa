"""PICO extraction: IO tags per word (P, I, O elements), scored by word-level F1 per element, then
their mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from blurbkit.tasks.types.base import Record, register
from blurbkit.tasks.types.token import TokenTaskType

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec

ELEMENTS = ("PAR", "INT", "OUT")


class PicoExtraction(TokenTaskType):
    name = "pico"
    provides = ("token", "single_label")  # what Figure 2 parts may require (models/: `requires`)
    title = "PICO extraction"
    metric = "pico_macro_f1"
    blurb_group = "PICO"
    unit = "PICO-tagged words"
    native_scheme = "io"
    file_formats = ("pico",)

    def measure(self, spec: DatasetSpec, records: Sequence[dict]) -> int:
        return sum(tag != "O" for record in records for tag in record["tags"])

    def details(self, spec: DatasetSpec, records: Sequence[dict]) -> dict[str, int]:
        spans = sum(1 for r in records for i, tag in enumerate(r["tags"]) if tag != "O" and (i == 0 or r["tags"][i - 1] != tag))
        return super().details(spec, records) | {"spans": spans}

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any, scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([r["tags"] for r in gold], predictions), {"elements": spec.entity_types or ELEMENTS}


register(PicoExtraction())
