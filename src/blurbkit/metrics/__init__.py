"""Official BLURB metrics (pure functions, registered in METRICS by name; task types name theirs)."""

from blurbkit.metrics.base import METRICS, MetricResult, prf
from blurbkit.metrics.classification import accuracy, relation_micro_f1
from blurbkit.metrics.correlation import pearson
from blurbkit.metrics.entity import chunks, entity_f1
from blurbkit.metrics.hoc import doc_key, hoc_micro_f1
from blurbkit.metrics.pico import pico_macro_f1

__all__ = [
    "METRICS",
    "MetricResult",
    "accuracy",
    "chunks",
    "doc_key",
    "entity_f1",
    "hoc_micro_f1",
    "pearson",
    "pico_macro_f1",
    "prf",
    "relation_micro_f1",
]
