"""Raw documents -> typed entities -> relations between them, with every loaded model.

    pipe = blurbkit.Pipeline.load(ner=["runs/bc5chem/model", "runs/bc2gm/model"],
                                  relations=["runs/chemprot/model"])
    pipe([{"id": "1", "title": "...", "text": "..."}, "any text"])
    for result in pipe.stream(documents, batch_size=32): ...

Steps, for a batch of documents at once (one forward pass per model over the whole batch, length
sorted by the InferenceRunner; long sentences windowed by the token transform):

1. Sentences (inference/sentences.py) of the title and of the text, then words
   (tasks/types/token.py `split_words`), as the BLURB NER corpora are tokenised.
2. Every NER model on every sentence: entity spans with character offsets into the document's full
   text (``title + " " + text`` when there is a title, else the text; code points), the mention
   text, the type (the model's label, e.g. "Chemical"), the model and a confidence: the product of
   the softmax probabilities of the span's predicted tags (the probability of that tag sequence
   under the per-word softmax). Identical spans of the same type from two models are merged
   (highest confidence kept).
3. Every relation model: its candidate pairs are the entities of one sentence whose relation
   types (TYPE_MAP below) form one of the type pairs the model was trained on, mentions not
   overlapping; entity 1 is the earlier mention, and both orders are tried only for a model trained
   with both (``ModelRecipe.pairs["order"] == "both"``). Each pair becomes the model's input form:
   the sentence with the two mentions replaced by the placeholders it was trained with (@CHEMICAL$,
   @GENE$ ...; transform "text") and the unmasked sentence with the pair's spans (transforms
   "markers" / "original" read that one). Returned: label, its softmax probability, the two entity
   ids; pairs predicted as the no-relation label are left out unless ``keep_negative``. A pair
   that the relation model's max_length cuts off is not classified but named in a warning (one
   per sentence), as a sentence with more than MAX_PAIRS_PER_SENTENCE pairs is.

Entity types -> relation placeholder types (TYPE_MAP, overridable with ``type_map``): an NER type
maps to its upper-case form (Chemical -> CHEMICAL, Disease -> DISEASE, Drug -> DRUG, GENE -> GENE)
except protein -> GENE (JNLPBA proteins are ChemProt's and GAD's genes). Which types a relation model
needs is recorded in its directory at save time (``pairs``); for older directories it comes from
the dataset's facts when that dataset is registered (chemprot: CHEMICAL, GENE), else from the
``relation_types`` argument ({model dir or dataset name: [TYPE, ...]}). A relation model whose types
no loaded NER model produces is refused at load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from blurbkit.arguments import items_of, paths_of
from blurbkit.data.documents import Document, as_document
from blurbkit.errors import BlurbkitError
from blurbkit.inference.predictor import Predictor, without_lost_pairs
from blurbkit.inference.sentences import split_sentences
from blurbkit.models.encoding import encode
from blurbkit.models.model import ModelRecipe
from blurbkit.tagging import tags_to_spans

TYPE_MAP = {"protein": "GENE", "Protein": "GENE", "Gene": "GENE"}
NEGATIVE_NAMES = ("false", "0", "negative", "none", "no_relation")
MAX_PAIRS_PER_SENTENCE = 2000  # beyond this a sentence's pairs are skipped (and said so)
MAX_NAMED = 5  # pairs named in one warning (a long sentence may have hundreds past max_length)


def relation_type(ner_type: str, type_map: Mapping[str, str]) -> str:
    return type_map.get(ner_type, ner_type.upper())


@dataclass
class LoadedModel:
    name: str
    path: Path
    predictor: Predictor

    @property
    def recipe(self) -> ModelRecipe:
        return self.predictor.recipe

    def describe(self) -> dict[str, Any]:
        recipe = self.recipe
        out = {"name": self.name, "path": str(self.path), "task_type": recipe.task_type, "dataset": recipe.dataset,
               "labels": list(recipe.labels), "transform": recipe.transform, "max_length": recipe.max_length}
        metrics = self.path.parent / "metrics.json"
        if metrics.is_file():  # the model directory sits in its run directory
            import json

            try:
                test = json.loads(metrics.read_text("utf-8")).get("test") or {}
                out["test"] = {k: v for k, v in test.items() if isinstance(v, int | float)}
            except (OSError, ValueError):
                out["test"] = None
        return out


class NerModel(LoadedModel):
    def __init__(self, name: str, path: Path, predictor: Predictor) -> None:
        super().__init__(name, path, predictor)
        if "token" not in predictor.task.provides or not hasattr(predictor.codec, "collect_with_probabilities"):
            raise BlurbkitError(f"{path}: not a token-level (NER) model (task type {predictor.recipe.task_type})")
        self.types = sorted({label.partition("-")[2] for label in predictor.codec.labels if label != "O"})

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"entity_types": self.types}

    def entities(self, sentences: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Entity spans (offsets into each sentence) with confidences, for a batch of sentences."""
        if not sentences:
            return []
        p = self.predictor
        records = p.task.records_from_inputs(list(sentences))
        data = encode(records, p.codec, p.recipe, p.runner.tokenizer, labelled=False)
        outputs = p.runner.outputs(data, desc=f"ner {self.name}", probabilities=True)
        tags, probs = p.codec.collect_with_probabilities(data.records, data.examples, outputs)
        results = []
        for record, row, confidence in zip(records, tags, probs, strict=True):
            words, text = record["_words"], record["text"]
            found = []
            for start, end, kind in tags_to_spans(row[: len(words)]):
                begin, finish = words[start][1], words[end - 1][2]
                found.append({"start": begin, "end": finish, "text": text[begin:finish], "type": kind,
                              "confidence": round(math.prod(confidence[start:end]), 6), "model": self.name})
            results.append(found)
        return results


class RelationModel(LoadedModel):
    def __init__(self, name: str, path: Path, predictor: Predictor, relation_types: Mapping[str, Sequence[str]]) -> None:
        super().__init__(name, path, predictor)
        recipe, task = predictor.recipe, predictor.task
        if "entity_pair" not in task.provides:
            raise BlurbkitError(f"{path}: not a relation (entity-pair) model (task type {recipe.task_type})")
        facts = recipe.pairs
        given = relation_types.get(str(path)) or relation_types.get(name) or relation_types.get(recipe.dataset)
        if given:
            spec = SimpleNamespace(entity_types=tuple(given), negative_label=_negative(recipe.labels))
            facts = task.pair_facts(spec)
        elif not facts:
            from blurbkit.tasks.registry import all_datasets

            spec = all_datasets().get(recipe.dataset)
            if spec is None or not spec.entity_types:
                raise BlurbkitError(f"{path}: the model does not record its entity types and dataset "
                                    f"{recipe.dataset!r} is not registered here; pass relation_types="
                                    f"{{{str(path)!r}: [TYPE, TYPE]}} (serve/predict: --relation-types)")
            facts = task.pair_facts(spec)
        self.facts = facts
        self.pair_types = {tuple(sorted(pair)) for pair in facts["pair_types"]}
        self.types = sorted({t for pair in self.pair_types for t in pair})
        self.negative = facts.get("negative_label") or _negative(recipe.labels)
        self.placeholder = facts.get("placeholder") or "@{type}$"
        self.both_orders = facts.get("order") == "both"

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"entity_types": self.types, "pair_types": sorted(map(list, self.pair_types)),
                                     "negative_label": self.negative}

    def candidates(self, sentence: str, entities: Sequence[dict[str, Any]],
                   type_map: Mapping[str, str]) -> tuple[list[tuple[dict, dict]], bool]:
        """Ordered (entity 1, entity 2) pairs of one sentence's entities (offsets in the sentence);
        True when the sentence had more than MAX_PAIRS_PER_SENTENCE and was skipped."""
        typed = [(relation_type(e["type"], type_map), e) for e in entities]
        typed = [(t, e) for t, e in typed if t in self.types]
        typed.sort(key=lambda item: (item[1]["start"], item[1]["end"]))
        pairs = []
        for i, (ti, ei) in enumerate(typed):
            for tj, ej in typed[i + 1:]:
                if tuple(sorted((ti, tj))) not in self.pair_types or ej["start"] < ei["end"]:
                    continue  # not a trained type pair, or overlapping mentions
                pairs.append(({**ei, "rtype": ti}, {**ej, "rtype": tj}))
                if self.both_orders:
                    pairs.append(({**ej, "rtype": tj}, {**ei, "rtype": ti}))
        if len(pairs) > MAX_PAIRS_PER_SENTENCE:
            return [], True
        return pairs, False

    def record(self, sentence: str, first: dict, second: dict, number: int) -> dict[str, Any]:
        """The model's input for one pair: the dummified sentence with the placeholders' spans, and
        the unmasked sentence with the mentions' spans (for the marker / original-text inputs)."""
        ordered = sorted([(first, 0), (second, 1)], key=lambda item: item[0]["start"])
        pieces, cursor, spans = [], 0, [None, None]
        length = 0
        for entity, slot in ordered:
            pieces.append(sentence[cursor:entity["start"]])
            length += entity["start"] - cursor
            token = self.placeholder.format(type=entity["rtype"])
            spans[slot] = {"start": length, "end": length + len(token), "type": entity["rtype"]}
            pieces.append(token)
            length += len(token)
            cursor = entity["end"]
        pieces.append(sentence[cursor:])
        original = [{"start": e["start"], "end": e["end"], "type": e["rtype"]} for e in (first, second)]
        return {"id": str(number), "text": "".join(pieces), "entities": spans,
                "original": {"text": sentence, "entities": original}}

    def classify(self, records: list[dict[str, Any]]) -> list[tuple[str, float] | None]:
        """(label, probability) per pair record; None for a pair that max_length cuts off (the
        model would not see it, so its label would mean nothing)."""
        if not records:
            return []
        p = self.predictor
        data = encode(records, p.codec, p.recipe, p.runner.tokenizer, labelled=False)
        data, _ = without_lost_pairs(data, p.recipe.max_length)
        outputs = p.runner.outputs(data, desc=f"relations {self.name}", probabilities=True)
        results: list[tuple[str, float] | None] = [None] * len(records)
        for example, (index, probs) in zip(data.examples, outputs, strict=True):
            results[example["record_index"]] = (p.codec.labels[index], round(float(probs[index]), 6))
        return results


def _negative(labels: Sequence[str]) -> str | None:
    return next((label for label in labels if label.lower() in NEGATIVE_NAMES), None)


def check_relation_types(relation_types: Any) -> None:
    """{model dir, name or dataset: [TYPE, ...]}: one string of types would be read letter by letter."""
    if relation_types is None:
        return
    if not isinstance(relation_types, Mapping) or not all(
            isinstance(types, list | tuple) and all(isinstance(t, str) for t in types) for types in relation_types.values()):
        raise BlurbkitError("relation_types must map a relation model (directory, name or dataset) to a list of "
                            f"entity types, e.g. {{'chemprot': ['CHEMICAL', 'GENE']}}, not {relation_types!r}")


def _names(paths: Sequence[Path]) -> list[str]:
    """A short unique name per model: its dataset-ish folder name (run_dir/model -> run_dir)."""
    names = []
    for path in paths:
        base = path.parent.name if path.name == "model" and path.parent.name else path.name
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


class Pipeline:
    """NER with every NER model, then relation extraction with every relation model, on raw documents."""

    def __init__(self, ner: Sequence[NerModel], relations: Sequence[RelationModel] = (),
                 type_map: Mapping[str, str] | None = None, keep_negative: bool = False) -> None:
        if not ner:
            raise BlurbkitError("a pipeline needs at least one NER model")
        if type_map is not None and not (isinstance(type_map, Mapping)
                                         and all(isinstance(k, str) and isinstance(v, str) for k, v in type_map.items())):
            raise BlurbkitError(f"type_map must map NER type to relation type (e.g. {{'Chemical': 'CHEMICAL'}}), not {type_map!r}")
        if not isinstance(keep_negative, bool):
            raise BlurbkitError(f"keep_negative must be true or false, not {keep_negative!r}")
        self.ner, self.relations = list(ner), list(relations)
        self.type_map = {**TYPE_MAP, **(type_map or {})}
        self.keep_negative = keep_negative
        produced = {relation_type(t, self.type_map): t for model in self.ner for t in model.types}
        for model in self.relations:
            missing = [t for t in model.types if t not in produced]
            if missing:
                mapping = ", ".join(f"{t} -> {relation_type(t, self.type_map)}" for m in self.ner for t in m.types)
                raise BlurbkitError(f"relation model {model.name} ({model.path}) needs {', '.join(missing)} entities, "
                                    f"which no loaded NER model produces (NER types: {mapping}); load an NER model of "
                                    f"that type or map one to it (type_map / --type-map NER_TYPE=TYPE)")

    @classmethod
    def load(cls, ner: Sequence[str | Path] = (), relations: Sequence[str | Path] = (), *,
             type_map: Mapping[str, str] | None = None, relation_types: Mapping[str, Sequence[str]] | None = None,
             keep_negative: bool = False, batch_tokens: int | None = None,
             settings: dict[str, Any] | None = None, backend: str = "torch") -> Pipeline:
        """Load NER and relation model directories (RUN_DIR/model). type_map: NER type -> relation
        type overrides; relation_types: {model dir or dataset: [TYPE, ...]} for relation directories
        that do not record their entity types; settings: runtime settings (Predictor); backend: the
        NER models' forward pass ("torch", or "onnx"/"onnx-int8" after `blurbkit export`;
        relation models stay torch)."""
        ner_paths, rel_paths = paths_of(ner, "ner"), paths_of(relations, "relations")  # one directory or a list
        check_relation_types(relation_types)
        names = _names(ner_paths + rel_paths)
        options = {"batch_tokens": batch_tokens, "settings": settings}
        ner_models = [NerModel(n, p, Predictor.load(p, backend=backend, **options))
                      for n, p in zip(names, ner_paths, strict=False)]
        rel_models = [RelationModel(n, p, Predictor.load(p, **options), relation_types or {})
                      for n, p in zip(names[len(ner_paths):], rel_paths, strict=True)]
        return cls(ner_models, rel_models, type_map=type_map, keep_negative=keep_negative)

    def describe(self) -> dict[str, Any]:
        return {"ner": [m.describe() for m in self.ner], "relations": [m.describe() for m in self.relations],
                "type_map": dict(self.type_map)}

    # ---- running -------------------------------------------------------------------------------
    def __call__(self, documents: Iterable[Any]) -> list[dict[str, Any]]:
        """One result per document, in order: {"id", "entities": [...], "relations": [...]} (plus
        "warnings" when something was skipped). Documents: strings, {"id", "title", "text"} or Document."""
        docs = [as_document(item, n) for n, item in enumerate(items_of(documents, "documents"))]
        return [self._result(doc, entities, relations, warnings)
                for doc, (entities, relations, warnings) in zip(docs, self._annotate(docs), strict=True)]

    def stream(self, documents: Iterable[Any], batch_size: int = 32) -> Iterator[dict[str, Any]]:
        """Results one by one for an iterable of any length, `batch_size` documents per forward pass."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BlurbkitError(f"batch_size must be a whole number of at least 1, not {batch_size!r}")
        if documents is None or isinstance(documents, str | bytes | dict) or not isinstance(documents, Iterable):
            raise BlurbkitError(f"documents: expected an iterable of documents, not {type(documents).__name__}")
        iterator, offset = iter(documents), 0
        while batch := list(islice(iterator, batch_size)):
            docs = [as_document(item, offset + n) for n, item in enumerate(batch)]
            offset += len(batch)
            yield from (self._result(doc, *parts) for doc, parts in zip(docs, self._annotate(docs), strict=True))

    def annotate_documents(self, documents: Sequence[Document]) -> list[Document]:
        """Documents with their entities and relations replaced by the predicted ones (for the
        PubTator / BioC writers: entity "id" = mention id, which relations name), and the
        warnings of what was skipped."""
        docs = [as_document(doc, n) for n, doc in enumerate(documents)]  # the checks __call__ makes
        out = []
        for doc, (entities, relations, warnings) in zip(docs, self._annotate(docs), strict=True):
            out.append(Document(id=doc.id, title=doc.title, text=doc.text, entities=entities,
                                relations=[{**r, "type": r["label"], "arg1": r["head"], "arg2": r["tail"]} for r in relations],
                                warnings=warnings))
        return out

    @staticmethod
    def _result(doc: Document, entities: list, relations: list, warnings: list) -> dict[str, Any]:
        result: dict[str, Any] = {"id": doc.id, "entities": entities, "relations": relations}
        if warnings:
            result["warnings"] = warnings
        return result

    def _annotate(self, docs: Sequence[Document]) -> list[tuple[list, list, list]]:
        # Sentences of every document: (document index, offset of the sentence in the full text, text)
        sentences: list[tuple[int, int, str]] = []
        for d, doc in enumerate(docs):
            for offset, _, passage in doc.passages:
                sentences.extend((d, offset + s, passage[s:e]) for s, e in split_sentences(passage))
        texts = [text for _, _, text in sentences]
        per_sentence: list[list[dict[str, Any]]] = [[] for _ in sentences]
        for model in self.ner:
            for found, entities in zip(per_sentence, model.entities(texts), strict=True):
                found.extend(entities)
        for s, found in enumerate(per_sentence):
            best: dict[tuple[int, int, str], dict[str, Any]] = {}
            for entity in found:
                key = (entity["start"], entity["end"], entity["type"])
                if key not in best or entity["confidence"] > best[key]["confidence"]:
                    best[key] = entity
            per_sentence[s] = sorted(best.values(), key=lambda e: (e["start"], e["end"], e["type"]))

        entities: list[list[dict[str, Any]]] = [[] for _ in docs]
        warnings: list[list[str]] = [[] for _ in docs]
        doc_entity: list[list[dict[str, Any]]] = []  # per sentence: the document-level entity of each found one
        for (d, offset, _), found in zip(sentences, per_sentence, strict=True):
            placed = []
            for entity in found:
                placed.append({"id": f"T{len(entities[d]) + 1}", **entity,
                               "start": entity["start"] + offset, "end": entity["end"] + offset})
                entities[d].append(placed[-1])
            doc_entity.append(placed)

        relations: list[list[dict[str, Any]]] = [[] for _ in docs]
        for model in self.relations:
            records, where = [], []
            for s, ((d, _, text), found) in enumerate(zip(sentences, per_sentence, strict=True)):
                pairs, skipped = model.candidates(text, found, self.type_map)
                if skipped:
                    warnings[d].append(f"{model.name}: a sentence at offset {sentences[s][1]} has more than "
                                       f"{MAX_PAIRS_PER_SENTENCE} candidate pairs; its relations were not predicted")
                index = {(e["start"], e["end"], e["type"]): placed for e, placed in zip(found, doc_entity[s], strict=True)}
                for first, second in pairs:
                    records.append(model.record(text, first, second, len(records)))
                    where.append((d, s, index[(first["start"], first["end"], first["type"])]["id"],
                                  index[(second["start"], second["end"], second["type"])]["id"]))
            cut: dict[tuple[int, int], list[str]] = {}  # (document, sentence) -> pairs max_length cut off
            for (d, s, head, tail), outcome in zip(where, model.classify(records), strict=True):
                if outcome is None:
                    cut.setdefault((d, s), []).append(f"{head}-{tail}")
                    continue
                label, probability = outcome
                if label == model.negative and not self.keep_negative:
                    continue
                relations[d].append({"id": f"R{len(relations[d]) + 1}", "label": label, "probability": probability,
                                     "head": head, "tail": tail, "model": model.name})
            for (d, s), names in cut.items():  # one warning a sentence, as for too many pairs
                listed = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
                warnings[d].append(f"{model.name}: {len(names)} candidate pair(s) of the sentence at offset "
                                   f"{sentences[s][1]} reach past the model's max_length ({model.recipe.max_length} "
                                   f"tokens); their relations were not predicted: {listed}")
        return list(zip(entities, relations, warnings, strict=True))
