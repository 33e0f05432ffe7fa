"""Token-level task types (NER, PICO): one tag per word.

Predictions in memory: a list of tag lists, one per gold record, aligned with its tokens.
Prediction files: the gold sentences' ``token<TAB>tag`` lines with the predicted tag, a blank
line after each sentence (one sentence = one canonical record); ``-DOCSTART-`` lines and repeated
blank lines are ignored, both mark a sentence boundary. A predicted tag is ``O`` or ``P-TYPE``
with P a prefix of the tagging scheme (IOB2 by default, which includes the IO tags;
``scheme="iobes"`` / ``"bioul"`` for those) and TYPE one of the dataset's entity types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import regex

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write
from blurbkit.tagging import (
    SCHEMES,
    TRAINING_SCHEMES,
    check_scheme,
    convert_tags,
    scheme_of_labels,
    tag_problem,
    tags_to_spans,
)
from blurbkit.tasks.types.base import Example, LabelCodec, Record, TaskType

if TYPE_CHECKING:
    from blurbkit.tasks.registry import DatasetSpec

DEFAULT_FILE_SCHEME = "iob2"
# Words of raw text the way the BLURB NER corpora are tokenised: runs of letters/digits, and
# every other non-space character on its own. The unit is the grapheme cluster (`regex`'s \X), so a
# word keeps its combining accents ("Cafe\u0301" as typed on some systems is one word, as "Café"
# is) and an emoji sequence or a flag stays one symbol. [\p{L}\p{N}_] is Python's own \w.
WORD = regex.compile(r"(?:(?=[\p{L}\p{N}_])\X)+|(?=\S)\X")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) character offsets of the words of `text`."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def file_scheme(scheme: str | None) -> str:
    scheme = (scheme or DEFAULT_FILE_SCHEME).lower()
    if scheme not in SCHEMES or scheme == "any":
        known = ", ".join(name for name in SCHEMES if name != "any")
        raise BlurbkitError(f"unknown tagging scheme {scheme!r} (one of {known})")
    return scheme


class TokenCodec(LabelCodec):
    """Word-level tags from each word's first subword; windows merged back into words. Scores are
    always computed in the dataset's own scheme; `scheme` is only what the model learns (converted
    to and from the native tags here)."""

    def __init__(self, labels: Sequence[str], native: str, scheme: str) -> None:
        super().__init__(labels)
        check_scheme(scheme)
        problem = next(filter(None, (tag_problem(label, scheme) for label in self.labels)), None)
        if problem:  # a saved recipe's labels, read before any prediction is made
            raise BlurbkitError(f"label {problem}")
        self.native, self.scheme = native, scheme
        self._index = {tag: i for i, tag in enumerate(self.labels)}

    def attach_labels(self, records: Sequence[Record], examples: list[Example]) -> None:
        for example in examples:
            record = records[example["record_index"]]
            tags = convert_tags(record["tags"], self.native, self.scheme)
            try:
                example["labels"] = [self._index[tags[w]] for w in example["word_index"]]
            except KeyError as err:
                raise BlurbkitError(f"record {record['id']}: tag {err.args[0]!r} not in {self.labels}") from None

    def collect(self, records: Sequence[Record], examples: list[Example], outputs: list[Any]) -> list[list[str]]:
        return self._merge(records, examples, [(tags, None) for tags in outputs])[0]

    def collect_with_probabilities(self, records: Sequence[Record], examples: list[Example],
                                   outputs: list[Any]) -> tuple[list[list[str]], list[list[float]]]:
        """`collect` of ``(tags, probabilities)`` outputs (InferenceRunner.outputs(probabilities=True)):
        the tags, and for each word the probability of its predicted tag in the window it was taken from."""
        return self._merge(records, examples, outputs)

    def _merge(self, records: Sequence[Record], examples: list[Example],
               outputs: list[tuple[list[int], list[list[float]] | None]]) -> tuple[list[list[str]], list[list[float]]]:
        # A word seen by several overlapping windows takes the prediction of the window in
        # which it sits farthest from an edge (most context on both sides).
        best: list[list[tuple[int, str, float] | None]] = [[None] * len(r["tokens"]) for r in records]
        for example, (tags, probs) in zip(examples, outputs, strict=True):
            begin, end, _ = example["window"]
            row = best[example["record_index"]]
            for n, (word, position, tag) in enumerate(zip(example["word_index"], example["word_positions"], tags, strict=True)):
                absolute = begin + position - 1
                margin = min(absolute - begin, end - 1 - absolute)
                if row[word] is None or margin > row[word][0]:
                    row[word] = (margin, self.labels[tag], probs[n][tag] if probs is not None else 1.0)
        merged = [[cell[1] if cell else "O" for cell in row] for row in best]
        confidence = [[cell[2] if cell else 1.0 for cell in row] for row in best]
        return [convert_tags(tags, self.scheme, self.native) for tags in merged], confidence


class TokenTaskType(TaskType):
    record_fields = {"id": (str,), "tokens": (list,), "tags": (list,)}

    def record_problem(self, spec: DatasetSpec, record: Record) -> str | None:
        problem = super().record_problem(spec, record)
        if problem is None and len(record["tokens"]) != len(record["tags"]):
            problem = f"{len(record['tokens'])} tokens but {len(record['tags'])} tags"
        return problem
    transform = "tokens"
    featurizer = "first_subword"
    head = "softmax"
    windowed = True
    prediction_suffix = "tsv"
    native_scheme = "bio"  # the scheme the distributed tags are in
    text_field = "text"

    # ---- data facts ---------------------------------------------------------------------------
    def details(self, spec: DatasetSpec, records: Sequence[Record]) -> dict[str, int]:
        out = {"sentences": len(records), "tokens": sum(len(r["tags"]) for r in records)}
        documents = len({r["doc_id"] for r in records if r.get("doc_id") is not None})
        if documents:
            out["documents"] = documents
        return out

    def passages(self, record: Record) -> Iterator[tuple[str, bool]]:
        yield " ".join(record["tokens"]), True

    def infer_fields(self, records: Sequence[Record]) -> dict[str, set[str]]:
        return {"entity_types": {tag[2:] for record in records for tag in record["tags"] if tag != "O"}}

    def bootstrap_units(self, spec: DatasetSpec, gold: Sequence[Record]) -> list[str]:
        """A record's document where the distribution names it (sentences of one abstract are drawn
        together: they are not independent), else the sentence itself."""
        return [str(r.get("doc_id") or r["id"]) for r in gold]

    # ---- training ------------------------------------------------------------------------------
    def trivial_predictions(self, spec: DatasetSpec, train_records: Sequence[Record], records: Sequence[Record]) -> list[list[str]]:
        """``O`` for every word: no entity (the majority tag)."""
        return [["O"] * len(record["tokens"]) for record in records]

    def codec(self, spec: DatasetSpec, train_records: Sequence[Record] = (), scheme: str | None = None) -> TokenCodec:
        scheme = scheme or self.native_scheme
        check_scheme(scheme, TRAINING_SCHEMES)
        types = list(spec.entity_types) or sorted({tag[2:] for r in train_records for tag in r["tags"] if tag != "O"})
        prefixes = {"bio": ("B", "I"), "io": ("I",), "bioul": ("B", "I", "L", "U")}[scheme]
        return TokenCodec(["O"] + [f"{p}-{kind}" for kind in types for p in prefixes], self.native_scheme, scheme)

    def saved_codec(self, labels: Sequence[str], scheme: str | None = None) -> TokenCodec:
        # Directories saved by blurbkit 0.1.0 do not record the scheme: their labels tell it.
        return TokenCodec(labels, self.native_scheme, scheme or scheme_of_labels(labels))

    # ---- predictions ---------------------------------------------------------------------------
    @staticmethod
    def entity_types(spec: DatasetSpec, gold: Sequence[Record]) -> set[str]:
        """Declared entity types plus any the gold tags use (a user dataset may declare none)."""
        found = {tag.partition("-")[2] for record in gold for tag in record["tags"] if tag != "O"}
        return set(spec.entity_types) | found

    def check_predictions(self, spec: DatasetSpec, gold: Sequence[Record], predictions: Any,
                          scheme: str | None = None) -> list[list[str]]:
        scheme = file_scheme(scheme)
        if isinstance(predictions, str | Mapping) or not isinstance(predictions, Sequence):
            raise BlurbkitError(f"{spec.name}: predictions must be a list of tag lists, one per gold sentence")
        if len(predictions) != len(gold):
            raise BlurbkitError(f"{spec.name}: {len(predictions)} predicted tag sequences for {len(gold)} gold sentences")
        types = self.entity_types(spec, gold)
        for record, tags in zip(gold, predictions, strict=True):
            if isinstance(tags, str) or not isinstance(tags, Sequence):
                raise BlurbkitError(f"record {record['id']}: predicted tags must be a list, got {type(tags).__name__}")
            if len(tags) != len(record["tokens"]):
                raise BlurbkitError(f"record {record['id']}: {len(tags)} predicted tags for {len(record['tokens'])} tokens")
            for number, tag in enumerate(tags, start=1):
                problem = tag_problem(tag, scheme, types) if isinstance(tag, str) else f"tag {tag!r} is not a string"
                if problem:
                    raise BlurbkitError(f"record {record['id']}, token {number}: {problem}")
        return [list(tags) for tags in predictions]

    def read_predictions(self, spec: DatasetSpec, gold: Sequence[Record], path: Path, lines: list[str],
                         scheme: str | None = None) -> list[list[str]]:
        return TokenFileReader(spec, gold, path, self.entity_types(spec, gold), file_scheme(scheme)).read(lines)

    def write_predictions(self, spec: DatasetSpec, records: Sequence[Record], predictions: Any, path: Path,
                          scheme: str | None = None) -> None:
        tags = self.check_predictions(spec, records, predictions, scheme)
        for record in records:
            bad = next((t for t in record["tokens"] if _unwritable(t)), None)
            if bad is not None:
                raise BlurbkitError(f"record {record['id']}: token {bad!r} cannot be written as a token line")
        with atomic_write(path) as handle:
            for record, sentence in zip(records, tags, strict=True):
                if record["tokens"]:
                    handle.writelines(f"{token}\t{tag}\n" for token, tag in zip(record["tokens"], sentence, strict=True))
                    handle.write("\n")

    # ---- new text ------------------------------------------------------------------------------
    def records_from_inputs(self, inputs: Sequence[str | dict[str, Any]], transform: Any = None) -> list[Record]:
        records = super().records_from_inputs(inputs, transform)
        for record in records:
            words = split_words(record["text"])
            record["_words"] = words
            record["tokens"] = [w for w, _, _ in words] or ["."]  # an empty text still makes one example
        return records

    def results(self, inputs: Sequence[Any], records: Sequence[Record], predictions: Any) -> list[list[dict[str, Any]]]:
        """Entity spans with character offsets into each input text."""
        results = []
        for record, tags in zip(records, predictions, strict=True):
            words, text = record["_words"], record["text"]
            entities = []
            for start, end, kind in tags_to_spans(tags[: len(words)]):
                begin, finish = words[start][1], words[end - 1][2]
                entities.append({"start": begin, "end": finish, "type": kind, "text": text[begin:finish]})
            results.append(entities)
        return results


def _unwritable(token: str) -> bool:
    """Tokens the line format cannot carry: they would split a line or read as a boundary."""
    return any(c in token for c in "\t\n\r") or token.startswith("-DOCSTART-")


class TokenFileReader:
    """Reads a token-line prediction file against the gold sentences, naming file and line on error."""

    def __init__(self, spec: DatasetSpec, gold: Sequence[Record], path: Path, types: set[str], scheme: str) -> None:
        self.gold, self.path, self.types, self.scheme = gold, path, types, scheme
        self.targets = [i for i, record in enumerate(gold) if record["tokens"]]  # empty ones have no lines
        self.predictions: list[list[str]] = [[] for _ in gold]
        self.sentence, self.position, self.open = 0, 0, False

    def read(self, lines: list[str]) -> list[list[str]]:
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("-DOCSTART-"):
                if self.open:
                    self._close(number)
                continue
            self._token_line(line, number)
        if self.open:
            self._close(len(lines))
        if self.sentence < len(self.targets):
            raise BlurbkitError(f"file ends after {self.sentence} sentences; the gold split has {len(self.targets)}",
                                path=self.path)
        return self.predictions

    def _token_line(self, line: str, number: int) -> None:
        fields = line.split("\t")
        if len(fields) != 2:
            raise BlurbkitError(f"expected 2 tab-separated columns (token, tag), found {len(fields)}",
                                path=self.path, line=number)
        if self.sentence >= len(self.targets):
            raise BlurbkitError(f"more sentences than the gold split's {len(self.targets)}", path=self.path, line=number)
        record = self.gold[self.targets[self.sentence]]
        token, tag = fields[0], fields[1].strip()
        where = f"sentence {self.sentence + 1} (gold id {record['id']}), token {self.position + 1}"
        if self.position >= len(record["tokens"]):
            raise BlurbkitError(f"{where}: gold sentence has only {len(record['tokens'])} tokens",
                                path=self.path, line=number)
        if token != record["tokens"][self.position]:
            raise BlurbkitError(f"{where}: token {token!r} differs from gold {record['tokens'][self.position]!r}",
                                path=self.path, line=number)
        problem = tag_problem(tag, self.scheme, self.types)
        if problem:
            raise BlurbkitError(f"{where}: {problem}", path=self.path, line=number)
        self.predictions[self.targets[self.sentence]].append(tag)
        self.position, self.open = self.position + 1, True

    def _close(self, number: int) -> None:
        tokens = self.gold[self.targets[self.sentence]]["tokens"]
        if self.position < len(tokens):
            where = f"sentence {self.sentence + 1} (gold id {self.gold[self.targets[self.sentence]]['id']})"
            raise BlurbkitError(f"{where} ends after {self.position} tokens; gold has {len(tokens)}",
                                path=self.path, line=number)
        self.sentence, self.position, self.open = self.sentence + 1, 0, False
