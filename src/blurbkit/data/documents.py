"""Documents with entity and relation annotations, and the two exchange formats biomedical text
mining uses for them: PubTator and BioC (XML or JSON, through the `bioc` package).

A `Document` is an id, an optional title and a text. Offsets are character (Unicode code point)
offsets into the document's *full text*: ``title + " " + text`` when it has a title (the PubTator
convention: the abstract starts at ``len(title) + 1``), else ``text``. Python string indices are
code points, so ``full_text[start:end]`` is always the mention; clients counting UTF-16 units
(JavaScript) or UTF-8 bytes must convert.

PubTator, one document::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>id[<TAB>more...]      (one line per mention)
    PMID<TAB>REL<TAB>id1<TAB>id2[<TAB>more...]                             (one line per relation)
    <blank line>

Mention lines are told from relation lines by their integer start/end columns. Columns after the
type (the concept id, BC5CDR's composite-mention names, BioRED's novelty) are kept as they are, so
reading and writing a file gives it back byte for byte (LF line endings). A mention whose text
differs from ``full_text[start:end]`` is refused, naming the file and line.

BioC: one passage for the title (infon type "title", offset 0) and one for the text (type
"abstract", offset len(title) + 1), or one passage when there is no title. Annotations carry
infons ``type`` (and ``identifier``, ``confidence``, ``model`` when known) and one location with
document-level offset; relations are document-level with infons ``type`` (``probability``) and
nodes of roles ``Arg1``/``Arg2`` naming annotation ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write, read_lines, unicode_problem


@dataclass
class Document:
    id: str
    text: str
    title: str | None = None
    # {"start", "end", "text", "type"} plus optional "id" (mention id), "concept" (PubTator id
    # column), "extra" (further PubTator columns), "confidence", "model"
    entities: list[dict[str, Any]] = field(default_factory=list)
    # {"type", "arg1", "arg2"} plus optional "extra", "probability", "model"
    relations: list[dict[str, Any]] = field(default_factory=list)
    # What the pipeline skipped for this document (e.g. a sentence with too many candidate pairs)
    warnings: list[str] = field(default_factory=list)

    @property
    def full_text(self) -> str:
        return self.text if self.title is None else f"{self.title} {self.text}"

    @property
    def passages(self) -> list[tuple[int, str, str]]:
        """(offset, kind, text) of the title and the text."""
        if self.title is None:
            return [(0, "text", self.text)]
        return [(0, "title", self.title), (len(self.title) + 1, "abstract", self.text)]


class DocumentError(BlurbkitError):
    """One pipeline input is not a document; `index` says which (the CLI turns it into the file's line)."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"document {index}: {problem}")
        self.index, self.problem = index, problem


def as_document(item: Any, number: int) -> Document:
    """A pipeline input as a Document: a string (the text), a dict {"id", "title", "text"} or a Document."""
    if isinstance(item, Document):
        _check_unicode(number, item)
        return item
    if isinstance(item, str):
        document = Document(id=str(number), text=item)
        _check_unicode(number, document)
        return document
    if not isinstance(item, dict):
        raise DocumentError(number, f"expected a string or an object {{id, title, text}}, got {type(item).__name__}")
    if not {"text", "title"} & set(item):  # {"abstract": ...} would annotate nothing, silently
        others = sorted(set(item) - {"id"})
        raise DocumentError(number, "expected an object with 'text' (and optionally 'id', 'title')"
                                    + (f"; it has {', '.join(map(repr, others))}" if others else ""))
    text, title, doc_id = item.get("text", ""), item.get("title"), item.get("id", str(number))
    if not isinstance(text, str) or (title is not None and not isinstance(title, str)):
        raise DocumentError(number, "'text' and 'title' must be strings")
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
        raise DocumentError(number, "'id' must be a string")
    document = Document(id=str(doc_id), text=text, title=title)
    _check_unicode(number, document)
    return document


def _check_unicode(number: int, document: Document) -> None:
    # A lone surrogate (JSON "\ud800") would reach the tokenizer, which fails with a TypeError.
    for name in ("id", "title", "text"):
        value = getattr(document, name)
        problem = unicode_problem(value) if isinstance(value, str) else None
        if problem:
            raise DocumentError(number, f"{name!r} {problem}")


# ---- PubTator ------------------------------------------------------------------------------------

def parse_pubtator(lines: Sequence[str], path: str | Path = "<pubtator>") -> list[Document]:
    documents: list[Document] = []
    current: Document | None = None
    entity_lines: list[int] = []  # the line of each mention of the current document
    expect = "title"
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if current is not None:
                if expect != "annotations":
                    raise BlurbkitError(f"document {current.id!r} has no '|a|' line", path=path, line=number)
                documents.append(_checked(current, entity_lines, path))
            current, expect, entity_lines = None, "title", []
            continue
        if expect in ("title", "abstract"):
            marker = "|t|" if expect == "title" else "|a|"
            pmid, found, rest = line.partition(marker)
            if not found or "\t" in pmid or (current is not None and pmid != current.id):
                raise BlurbkitError(f"expected a 'PMID{marker}...' line", path=path, line=number)
            if expect == "title":
                current = Document(id=pmid, title=rest, text="")
                expect = "abstract"
            else:
                current.text = rest  # type: ignore[union-attr]
                expect = "annotations"
            continue
        assert current is not None
        fields = line.split("\t")
        if fields[0] != current.id:
            raise BlurbkitError(f"annotation of document {fields[0]!r} inside document {current.id!r}", path=path, line=number)
        if len(fields) >= 5 and all(_INTEGER.fullmatch(f) for f in fields[1:3]) and not all(f.isdigit() for f in fields[1:3]):
            # Two integers are a mention's offsets (a relation line has its type there, which may be a
            # number, and an id after it): a negative one is a broken mention, not a relation.
            raise BlurbkitError(f"a mention's offsets must be non-negative, found {fields[1]} and {fields[2]}",
                                path=path, line=number)
        if len(fields) >= 5 and fields[1].isdigit() and fields[2].isdigit():
            start, end = int(fields[1]), int(fields[2])
            entity = {"start": start, "end": end, "text": fields[3], "type": fields[4]}
            if len(fields) > 5:
                entity["concept"] = fields[5]
            if len(fields) > 6:
                entity["extra"] = fields[6:]
            entity_lines.append(number)
            current.entities.append(entity)
        elif len(fields) >= 4:
            relation = {"type": fields[1], "arg1": fields[2], "arg2": fields[3]}
            if len(fields) > 4:
                relation["extra"] = fields[4:]
            current.relations.append(relation)
        else:
            raise BlurbkitError(f"expected a mention line (PMID, start, end, text, type, id) or a relation line "
                                f"(PMID, type, id1, id2), found {len(fields)} columns", path=path, line=number)
    if current is not None:
        if expect != "annotations":
            raise BlurbkitError(f"document {current.id!r} has no '|a|' line", path=path, line=len(lines))
        documents.append(_checked(current, entity_lines, path))
    return documents


_INTEGER = re.compile(r"-?[0-9]+")


def _checked(document: Document, lines: list[int], path: str | Path) -> Document:
    full = document.full_text
    for index, entity in enumerate(document.entities):
        start, end = entity["start"], entity["end"]
        found = full[start:end]
        if start > end or end > len(full) or found != entity["text"]:
            raise BlurbkitError(f"document {document.id}: offsets {start}-{end} hold {found!r}, not the mention "
                                f"{entity['text']!r}", path=path, line=lines[index])
    return document


def read_pubtator(path: str | Path) -> list[Document]:
    """The documents of a PubTator file (.gz read as gzip)."""
    documents = parse_pubtator(read_lines(path), path)
    if not documents:
        raise BlurbkitError("no PubTator documents", path=path)
    return documents


def _clean(value: str, what: str, doc_id: str) -> str:
    if "\n" in value or "\r" in value:
        raise BlurbkitError(f"document {doc_id}: the {what} holds a line break, which PubTator cannot carry")
    return value


def pubtator_text(documents: Iterable[Document]) -> str:
    out = []
    for document in documents:
        title = document.title if document.title is not None else ""
        out.append(f"{document.id}|t|{_clean(title, 'title', document.id)}\n")
        out.append(f"{document.id}|a|{_clean(document.text, 'text', document.id)}\n")
        for entity in document.entities:
            # The id column: the concept id when known, else the mention id (predictions), which
            # the relation lines then name.
            concept = entity.get("concept", entity.get("id"))
            fields = [document.id, str(entity["start"]), str(entity["end"]), entity["text"], entity["type"],
                      *([] if concept is None else [concept]), *entity.get("extra", [])]
            out.append("\t".join(_clean(str(f), "mention", document.id).replace("\t", " ") for f in fields) + "\n")
        for relation in document.relations:
            fields = [document.id, relation["type"], relation["arg1"], relation["arg2"], *relation.get("extra", [])]
            out.append("\t".join(str(f) for f in fields) + "\n")
        out.append("\n")
    return "".join(out)


def write_pubtator(documents: Iterable[Document], path: str | Path) -> None:
    text = pubtator_text(documents)
    with atomic_write(path) as handle:
        handle.write(text)


# ---- BioC ----------------------------------------------------------------------------------------

def _bioc() -> Any:
    try:
        import bioc
    except ImportError:  # pragma: no cover - a core dependency
        raise BlurbkitError("BioC needs the 'bioc' package (pip install bioc)") from None
    return bioc


def to_bioc(documents: Iterable[Document]) -> Any:
    bioc = _bioc()
    collection = bioc.BioCCollection()
    collection.source = "blurbkit"
    for document in documents:
        doc = bioc.BioCDocument()
        doc.id = document.id
        passages = []
        for offset, kind, text in document.passages:
            passage = bioc.BioCPassage()
            passage.offset, passage.text = offset, text
            passage.infons["type"] = kind
            doc.add_passage(passage)
            passages.append(passage)
        for number, entity in enumerate(document.entities, start=1):
            annotation = bioc.BioCAnnotation()
            annotation.id = str(entity.get("id", f"T{number}"))
            annotation.text = entity["text"]
            annotation.infons["type"] = entity["type"]
            for key, name in (("concept", "identifier"), ("confidence", "confidence"), ("model", "model")):
                if key in entity:
                    annotation.infons[name] = str(entity[key])
            annotation.add_location(bioc.BioCLocation(entity["start"], entity["end"] - entity["start"]))
            home = next((p for p in reversed(passages) if p.offset <= entity["start"]), passages[0])
            home.add_annotation(annotation)
        for number, relation in enumerate(document.relations, start=1):
            rel = bioc.BioCRelation()
            rel.id = str(relation.get("id", f"R{number}"))
            rel.infons["type"] = relation["type"]
            for key in ("probability", "model"):
                if key in relation:
                    rel.infons[key] = str(relation[key])
            rel.add_node(bioc.BioCNode(str(relation["arg1"]), "Arg1"))
            rel.add_node(bioc.BioCNode(str(relation["arg2"]), "Arg2"))
            doc.add_relation(rel)
        collection.add_document(doc)
    return collection


def from_bioc(collection: Any, path: str | Path = "<bioc>") -> list[Document]:
    documents = []
    for doc in collection.documents:
        for passage in doc.passages:
            _check_offset(passage.offset, f"document {doc.id}: a passage's offset", path)
            for annotation in passage.annotations:
                for location in annotation.locations:
                    _check_offset(location.offset, f"document {doc.id}, annotation {annotation.id}: offset", path)
                    _check_offset(location.length, f"document {doc.id}, annotation {annotation.id}: length", path)
        passages = sorted(doc.passages, key=lambda p: p.offset)
        if (len(passages) == 2 and passages[0].offset == 0
                and passages[1].offset == len(passages[0].text or "") + 1):
            document = Document(id=doc.id, title=passages[0].text or "", text=passages[1].text or "")
        else:
            # Lay the passages out at their offsets (spaces between): offsets stay document-level.
            text = ""
            for passage in passages:
                if passage.offset < len(text):
                    raise BlurbkitError(f"document {doc.id}: passage at offset {passage.offset} overlaps the one before", path=path)
                text += " " * (passage.offset - len(text)) + (passage.text or "")
            document = Document(id=doc.id, text=text)
        full = document.full_text
        for passage in passages:
            for annotation in passage.annotations:
                if not annotation.locations:
                    continue
                span = annotation.total_span
                start, end = span.offset, span.offset + span.length
                if full[start:end] != annotation.text:
                    raise BlurbkitError(f"document {doc.id}, annotation {annotation.id}: offsets {start}-{end} hold "
                                        f"{full[start:end]!r}, not {annotation.text!r}", path=path)
                entity = {"start": start, "end": end, "text": annotation.text,
                          "type": annotation.infons.get("type", ""), "id": annotation.id}
                if "identifier" in annotation.infons:
                    entity["concept"] = annotation.infons["identifier"]
                entity.update(_scored(annotation.infons, "confidence"))
                document.entities.append(entity)
        for relation in doc.relations:
            nodes = [node.refid for node in relation.nodes]
            if len(nodes) >= 2:
                document.relations.append({"type": relation.infons.get("type", ""), "arg1": nodes[0], "arg2": nodes[1],
                                           "id": relation.id, **_scored(relation.infons, "probability")})
        documents.append(document)
    return documents


def _check_offset(value: Any, what: str, path: str | Path) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BlurbkitError(f"{what} must be a non-negative integer, not {value!r}", path=path)


def _scored(infons: dict[str, str], key: str) -> dict[str, Any]:
    """The score and model infons blurbkit writes, back as values."""
    out: dict[str, Any] = {}
    if key in infons:
        try:
            out[key] = float(infons[key])
        except ValueError:
            out[key] = infons[key]
    if "model" in infons:
        out["model"] = infons["model"]
    return out


def read_bioc(path: str | Path) -> list[Document]:
    """A BioC collection file: JSON when it ends in .json, else XML."""
    bioc = _bioc()
    text = "\n".join(read_lines(path))
    try:
        if str(path).endswith(".json"):
            from bioc import biocjson

            collection = biocjson.loads(text)
        else:
            collection = bioc.biocxml.loads(text)
    except KeyError as err:  # a field the format requires is missing
        raise BlurbkitError(f"not a BioC {'JSON' if str(path).endswith('.json') else 'XML'} collection "
                            f"(missing field {err})", path=path) from None
    except Exception as err:  # the package raises lxml / json errors on malformed input
        raise BlurbkitError(f"not a BioC {'JSON' if str(path).endswith('.json') else 'XML'} collection ({err})", path=path) from None
    return from_bioc(collection, path)


def bioc_text(documents: Iterable[Document], json_format: bool = False) -> str:
    collection = to_bioc(documents)
    if json_format:
        from bioc import biocjson

        return biocjson.dumps(collection, indent=2, ensure_ascii=False) + "\n"
    return _bioc().biocxml.dumps(collection)


def write_bioc(documents: Iterable[Document], path: str | Path) -> None:
    text = bioc_text(documents, json_format=str(path).endswith(".json"))
    with atomic_write(path) as handle:
        handle.write(text)
