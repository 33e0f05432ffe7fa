"""Relation extraction: one label per entity pair (dummified text, [CLS], softmax), scored by micro
F1 over the positive classes (the negative class never counts as a hit)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import unicode_problem
from blurbkit.tasks.types.base import InputError, Record, register
from blurbkit.tasks.types.by_id import IdTaskType

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec

NEGATIVE_NAMES = ("false", "0", "negative", "none", "no_relation")  # what `datasets add` takes as no-relation
# A BLURB type placeholder: @CHEMICAL$, @GENE$, @DISEASE$, and @CHEM-GENE$ for overlapping mentions.
PLACEHOLDER = re.compile(r"@([A-Za-z][A-Za-z_]*(?:-[A-Za-z][A-Za-z_]*)?)\$")


class RelationExtraction(IdTaskType):
    record_fields = {"id": (str,), "text": (str,), "label": (str,), "entities": (list,)}
    name = "relation"
    provides = ("sequence", "text", "single_label", "entity_pair")  # what Figure 2 parts may require (models/: `requires`)
    title = "Relation extraction"
    metric = "relation_micro_f1"
    blurb_group = "Relation Extraction"
    unit = "relation instances"
    file_formats = ("chemprot", "gad")

    def metric_inputs(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any, scheme: str | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, _ = super().metric_inputs(spec, gold, predictions, scheme)
        return args, {"negative_label": spec.negative_label}

    def passages(self, record: Record) -> Iterator[tuple[str, bool]]:
        yield (record["original"]["text"] if "original" in record else record["text"]), True

    def placeholder_text(self, records: Sequence[Record]) -> bool:
        return not any("original" in r for r in records)  # ChemProt / GAD: distributed masked

    def infer_fields(self, records: Sequence[dict]) -> dict[str, set[str]]:
        return {"entity_types": {e["type"] for r in records for e in r["entities"]}, "labels": {r["label"] for r in records}}

    def pair_facts(self, spec: DatasetSpec, train_records: Sequence[dict] = ()) -> dict[str, Any]:
        """The entity types of the pairs, which type combinations form a pair, whether entity 1 is
        always the earlier mention ("text") or either ("both"), the no-relation label and the
        placeholder form: from the training records where given, else from the dataset's facts
        (one type: pairs of it; several: pairs of two different types; entity 1 first in the text,
        as in every BLURB relation corpus)."""
        seen_pairs = set()
        text_order = True
        for record in train_records:
            entities = (record.get("original") or {}).get("entities") or record.get("entities") or []
            if len(entities) < 2:
                continue
            seen_pairs.add(tuple(sorted((entities[0]["type"], entities[1]["type"]))))
            text_order = text_order and int(entities[0]["start"]) <= int(entities[1]["start"])
        types = sorted(set(spec.entity_types) | {t for pair in seen_pairs for t in pair})
        if not seen_pairs:
            if len(types) == 1:
                seen_pairs = {(types[0], types[0])}
            else:
                seen_pairs = {(a, b) for i, a in enumerate(types) for b in types[i + 1:]}
        return {
            "entity_types": types,
            "pair_types": [list(pair) for pair in sorted(seen_pairs)],
            "order": "text" if text_order else "both",
            "negative_label": spec.negative_label,
            "placeholder": "@{type}$",
        }

    def records_from_inputs(self, inputs: Sequence[str | dict[str, Any]], transform: Any = None) -> list[Record]:
        """A relation input is one sentence with the pair's two mentions replaced by placeholders
        (@CHEMICAL$ ... @GENE$; @CHEM-GENE$ stands for both), or, for a model trained on the
        unmasked sentence (markers / original transforms, which set ``needs_original``), an object
        with ``original`` {text, entities: the pair's two spans}. Anything else would still get a
        label, a meaningless one, so it is refused; raw text goes through the NER + relation
        Pipeline (blurbkit serve), which finds the mentions."""
        records = super().records_from_inputs(inputs, transform)
        unmasked = reads_original(transform)
        for n, record in enumerate(records):
            if unmasked:
                check_original(n, record.get("original"))
                continue
            if "entities" in record:  # a dummified-text model reads the placeholders, not spans
                raise InputError(n, "give the pair as placeholders in 'text' (@GENE$ ... @DISEASE$), or as 'original' "
                                    "{text, entities} for a model trained on the unmasked sentence; 'entities' is not read")
            # Checked whether or not 'original' is given too: this model reads only 'text'.
            record["entities"] = placeholder_spans(record["text"])
            if len(record["entities"]) != 2:
                raise InputError(n, f"expected the pair's two entity placeholders (e.g. @GENE$ ... @DISEASE$), found "
                                    f"{len(record['entities'])}; raw text goes through the NER + relation pipeline (blurbkit serve)")
        return records

    def input_fields_for(self, transform: Any = None) -> tuple[str, ...]:
        # A model reading the unmasked sentence takes {"original": {...}} alone (checked above).
        return () if reads_original(transform) else self.input_fields

    def complete_registration(self, table: dict[str, Any], inferred: bool) -> None:
        if not inferred:
            return
        labels = table.get("labels") or []
        negative = table.get("negative_label") or next((n for n in NEGATIVE_NAMES if n in labels), None)
        if negative not in labels:
            raise BlurbkitError(f"pass --negative-label, one of {', '.join(labels)} (the no-relation class)")
        table["negative_label"] = negative


register(RelationExtraction())


def reads_original(transform: Any) -> bool:
    """Whether a model with this input transform reads the record's unmasked sentence (``original``)."""
    return bool(getattr(transform, "needs_original", False))


def check_original(n: int, original: Any) -> None:
    """Input `n`'s ``original``: the unmasked sentence and the pair's two spans within it, checked
    here so that a malformed one is the input's own one-line error, not a KeyError in a transform."""
    if original is None:
        raise InputError(n, "this model reads the unmasked sentence: give 'original' {text, entities} with the "
                            "pair's two spans (placeholders in 'text' are not read)")
    if not isinstance(original, dict):
        raise InputError(n, f"'original' must be an object {{text, entities}}, not {type(original).__name__}")
    text, entities = original.get("text"), original.get("entities")
    if not isinstance(text, str):
        raise InputError(n, "'original' needs 'text', the unmasked sentence as a string")
    problem = unicode_problem(text)
    if problem:
        raise InputError(n, f"'original' text {problem}")
    if not isinstance(entities, list) or len(entities) != 2:
        found = len(entities) if isinstance(entities, list) else "none"
        raise InputError(n, f"'original' needs 'entities', the pair's two spans [{{start, end}}, {{start, end}}]; found {found}")
    for k, entity in enumerate(entities, start=1):
        ends = [entity.get(key) if isinstance(entity, dict) else None for key in ("start", "end")]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ends):
            raise InputError(n, f"'original' entity {k} needs integer 'start' and 'end'")
        if not 0 <= ends[0] < ends[1] <= len(text):
            raise InputError(n, f"'original' entity {k} span {ends[0]}-{ends[1]} is not within its text "
                                f"({len(text)} characters)")
        if not isinstance(entity.get("type", ""), str):
            raise InputError(n, f"'original' entity {k}: 'type' must be a string")


def placeholder_spans(text: str, expand: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """The spans of a text's type placeholders, in text order; an overlap placeholder (@CHEM-GENE$)
    yields two entities with one span (as @DRUG-DRUG$ in DDI), each of its parts passed through
    `expand` (BLURB abbreviates them: CHEM -> CHEMICAL) where given."""
    entities = []
    for match in PLACEHOLDER.finditer(text):
        parts = match.group(1).split("-")
        for part in parts:
            kind = expand(part) if expand is not None and len(parts) == 2 else part
            entities.append({"start": match.start(), "end": match.end(), "type": kind})
    return entities

