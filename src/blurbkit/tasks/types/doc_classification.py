"""Document classification (HoC): several labels per abstract ([CLS], one sigmoid per label),
scored by micro F1 over (abstract, label) cells. Sentence-level ids (``PMID_s3``) are merged into
their abstract for gold and predictions alike.

Sentence-level prediction files (BLURB's own form): an abstract's predicted labels are the union
of the labels of its predicted sentences, as in BLURB/LinkBERT's evaluation. So a sentence left out
contributes no labels (no error; the abstract still needs at least one predicted id), but a
sentence id the gold abstract does not have (``PMID_s99``) is refused, naming the id and line:
it is a file for another split or a corrupted one. When the gold records carry no sentence list
(no sentence-level file was read), sentence ids are checked by their abstract only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.metrics import doc_key
from blurbkit.tasks.types.base import LabelCodec, Record, register
from blurbkit.tasks.types.by_id import IdTaskType, label_name

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec


class MultiLabelCodec(LabelCodec):
    def label_of(self, record: dict) -> list[float]:
        gold = set(record["labels"])
        unknown = gold - set(self.labels)
        if unknown:
            raise BlurbkitError(f"record {record['id']}: unknown labels {sorted(unknown)}")
        return [1.0 if label in gold else 0.0 for label in self.labels]

    def decode(self, output: list[int]) -> list[str]:
        return [self.labels[i] for i in output]


class DocumentClassification(IdTaskType):
    record_fields = {"id": (str,), "text": (str,), "labels": (list,)}
    name = "doc_classification"
    provides = ("sequence", "text", "multi_label")  # what Figure 2 parts may require (models/: `requires`)
    title = "Document classification"
    metric = "hoc_micro_f1"
    blurb_group = "Document Classification"
    unit = "documents"
    head = "sigmoid"
    file_formats = ("hoc",)

    codec_class = MultiLabelCodec

    def passages(self, record: Record) -> Iterator[tuple[str, bool]]:
        if record.get("sentences"):
            yield from ((sentence["text"], True) for sentence in record["sentences"])
        else:
            yield record["text"], False

    def normalize(self, spec: DatasetSpec, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValueError(f"prediction must be a list of labels (names or indices), got {value!r}")
        position = {label: i for i, label in enumerate(spec.labels)}
        names = {label_name(spec, item, index_ok=True) for item in value}
        return sorted(names, key=lambda label: (position.get(label, len(position)), label))

    def trivial_predictions(self, spec: DatasetSpec, train_records: Sequence[Record], records: Sequence[Record]) -> dict[str, list[str]]:
        """Each label that most training documents carry (per-label majority; in HoC none), for every document."""
        common = [label for label in spec.labels
                  if 2 * sum(label in r["labels"] for r in train_records) > len(train_records)]
        return {str(record["id"]): list(common) for record in records}

    def id_key(self, prediction_id: str) -> str:
        return doc_key(prediction_id)

    def _known(self, gold: Sequence[dict]) -> dict[str, Any]:
        """abstract id -> the set of its gold sentence ids (None when the gold has no sentence list),
        plus the gold ids themselves under "ids"."""
        abstracts: dict[str, set[str] | None] = {}
        for record in gold:
            key = doc_key(str(record["id"]))
            if "sentences" in record:
                abstracts.setdefault(key, set())
                abstracts[key] = (abstracts[key] or set()) | {str(s["id"]) for s in record["sentences"]}
            else:
                abstracts.setdefault(key, None)
        return {"abstracts": abstracts, "ids": {str(record["id"]) for record in gold}}

    def id_problem(self, spec: DatasetSpec, known: dict[str, Any], pid: str) -> str | None:
        if pid in known["ids"]:
            return None
        abstract = doc_key(pid)
        if abstract not in known["abstracts"]:
            return f"unknown id {pid!r} (not in the gold {spec.name} split)"
        sentences = known["abstracts"][abstract]
        if pid != abstract and sentences is not None and pid not in sentences:
            return (f"unknown sentence id {pid!r}: gold abstract {abstract} has {len(sentences)} sentences "
                    f"in the {spec.name} split")
        return None

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any, scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        truth = {}
        for record in gold:
            try:
                truth[str(record["id"])] = self.normalize(spec, list(record["labels"]))
            except ValueError as err:
                raise BlurbkitError(f"gold record {record['id']}: {err}") from None
        return (truth, predictions), {}

    def bootstrap_units(self, spec: DatasetSpec, gold: Sequence[dict]) -> list[str]:
        """The abstracts (sentence ids merged), one per row of the metric's counts: HoC is scored per abstract."""
        return list(dict.fromkeys(doc_key(str(record["id"])) for record in gold))

    def details(self, spec: DatasetSpec, records: Sequence[dict]) -> dict[str, int]:
        return {"sentences": sum(len(r.get("sentences", ())) for r in records)}

    def complete_registration(self, table: dict[str, Any], inferred: bool) -> None:
        if not table.get("labels"):
            raise BlurbkitError("a document classification dataset needs --labels (names in label-vector order)")


register(DocumentClassification())
