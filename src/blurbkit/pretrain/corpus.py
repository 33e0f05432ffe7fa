"""Pretraining corpora: read many text formats as a stream of documents (writing and cleaning them
into one file is ``corpus_build.py``).

A **document** is a list of sentences plus an id, an optional PMID and the source file name.
Readers (chosen by file name, gzip or not):

* ``*.jsonl``   one JSON object a line: ``sentences`` (a list, used as is), or ``title`` /
                ``abstract`` / ``text`` fields; PMID from ``pmid``/``PMID``/``pubmedID`` or a
                ``file`` name like ``PMID-123.txt`` / ``123_gro.txt``
* ``*.json``    one JSON document: an object keyed by PMID (EasyNER) or a list of objects
* ``*.csv``     a header with ``title`` and/or ``abstract`` (asreview, CORD-19 metadata)
* ``*.PubTator``  ``PMID|t|title`` / ``PMID|a|abstract`` blocks
* ``*.rel``     ADE corpus ``PMID|sentence|...`` (sentences grouped by PMID)
* ``*.txt``     ADE-NEG ``PMID NEG sentence`` lines; or blank-line separated documents with one
                sentence a line (blurbkit's own text output); or one document a line
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import re
import sys
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import json_loads, parse_jsonl
from blurbkit.pretrain.text import normalize, split_sentences

SUFFIXES = (".jsonl", ".json", ".csv", ".pubtator", ".rel", ".txt", ".text", ".tsv")
_HEADER_LINE = re.compile(r"^[A-Z][A-Z &/-]{2,40}:?$")
_SECTION_JOIN = re.compile(r"([.!?]);\s+")
_PMID_FILE = re.compile(r"^(?:PMID-)?(\d{4,9})(?:[_.-]|$)")
_ADE_NEG = re.compile(r"^(\d+) NEG (.*)$")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Document:
    id: str
    sentences: list[str]
    pmid: str | None = None
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "pmid": self.pmid, "source": self.source, "sentences": self.sentences}


# ---------------------------------------------------------------- reading


def _base_suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


@contextlib.contextmanager
def open_text(path: Path) -> Iterator[IO[str]]:
    """A text handle (gzip by magic bytes, not by name) with strict UTF-8 decoding."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
    except OSError as err:
        raise BlurbkitError(f"cannot read ({err.strerror})", path=path) from None
    if magic == b"\x1f\x8b":
        handle: IO[str] = gzip.open(path, "rt", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
    else:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115
    try:
        yield handle
    except UnicodeDecodeError as err:
        found = _first_bad_line(path, gz=magic == b"\x1f\x8b")
        if found is None:  # the file changed since: the decoder's own words
            raise BlurbkitError(f"not UTF-8 text ({err.reason}); is this a text corpus?", path=path) from None
        raise BlurbkitError(f"byte 0x{found[1]:02x} is not valid UTF-8; is this a text corpus?", path=path, line=found[0]) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise BlurbkitError(f"corrupt gzip data ({err})", path=path) from None
    finally:
        handle.close()


def _first_bad_line(path: Path, gz: bool) -> tuple[int, int] | None:
    """Where the text decoder failed, read again line by line (only on that path): its line number and
    byte. A line break is one byte no multi-byte character contains, so each line decodes alone."""
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, line[err.start]
    return None


def _lines(handle: IO[str]) -> Iterator[str]:
    for line in handle:
        yield line.rstrip("\r\n")


def _clean_paragraph(text: str) -> list[str]:
    """Sentences of a title/abstract: drop section-header lines, undo ``<dig>`` and ``.;`` joins."""
    if not text:
        return []
    text = text.replace("<dig>", "0")
    text = _SECTION_JOIN.sub(r"\1 ", text)
    lines = [line for line in text.split("\n") if not _HEADER_LINE.match(line.strip())]
    return split_sentences("\n".join(lines))


def _pmid_of(obj: dict[str, Any]) -> str | None:
    for key in ("pmid", "PMID", "pubmedID", "pubmed_id", "PubMedID"):
        value = obj.get(key)
        if value not in (None, ""):
            text = str(value).strip()
            if text.endswith(".0"):
                text = text[:-2]
            if text.isdigit():
                return text
    name = obj.get("file")
    if isinstance(name, str):
        match = _PMID_FILE.match(Path(name).name)
        if match:
            return match.group(1)
    return None


def document_from_object(obj: dict[str, Any], fallback_id: str, source: str) -> Document:
    if isinstance(obj.get("sentences"), list):
        sentences = [normalize(str(s)) for s in obj["sentences"]]
        sentences = [s for s in sentences if s]
    else:
        sentences = []
        for key in ("title", "abstract", "text", "body", "sentence"):
            value = obj.get(key)
            if isinstance(value, str):
                sentences.extend(_clean_paragraph(value))
    pmid = _pmid_of(obj)
    doc_id = next((str(obj[k]) for k in ("id", "doc_id", "cord_uid", "file", "record_id") if obj.get(k) not in (None, "")), None)
    return Document(id=doc_id or (pmid or fallback_id), sentences=sentences, pmid=pmid, source=source)


def _read_jsonl(path: Path, source: str) -> Iterator[Document]:
    with open_text(path) as handle:
        for number, obj in parse_jsonl(_lines(handle), path):
            yield document_from_object(obj, f"{source}:{number}", source)


def _read_json(path: Path, source: str) -> Iterator[Document]:
    with open_text(path) as handle:
        text = handle.read()
    try:
        data = json_loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON lines under a .json name
            yield from _read_jsonl(path, source)
            return
        raise BlurbkitError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    if isinstance(data, dict):
        items = list(data.items())
        if items and all(isinstance(v, dict) for _, v in items):
            for key, obj in items:
                obj = dict(obj)
                if str(key).isdigit():
                    obj.setdefault("pmid", key)
                yield document_from_object(obj, str(key), source)
            return
        data = [data]
    if not isinstance(data, list):
        raise BlurbkitError("expected a JSON object or list of objects", path=path)
    for number, obj in enumerate(data):
        if isinstance(obj, dict):
            yield document_from_object(obj, f"{source}:{number}", source)


def _read_csv(path: Path, source: str) -> Iterator[Document]:
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        fields = {f.lower() for f in (reader.fieldnames or [])}
        if not fields & {"title", "abstract", "text"}:
            raise BlurbkitError("CSV has no title/abstract/text column", path=path, line=1)
        for number, row in enumerate(reader, start=2):
            row = {(k or "").lower() if (k or "").lower() in ("title", "abstract", "text") else k: v for k, v in row.items()}
            yield document_from_object(row, f"{source}:{number}", source)


def _read_pubtator(path: Path, source: str) -> Iterator[Document]:
    pmid, title, abstract = None, "", ""
    with open_text(path) as handle:
        for number, line in enumerate(_lines(handle), start=1):
            parts = line.split("|", 2)
            if line.strip() and not (len(parts) == 3 and parts[1] in ("t", "a")) and "\t" not in line:
                # Neither a title/abstract line nor a tab-separated annotation: a damaged line would
                # otherwise drop its document's text without a word.
                raise BlurbkitError("expected a 'PMID|t|...' or 'PMID|a|...' line or a tab-separated annotation",
                                    path=path, line=number)
            if len(parts) == 3 and parts[1] in ("t", "a"):
                if pmid is not None and parts[0] != pmid:
                    yield Document(pmid, _clean_paragraph(title) + _clean_paragraph(abstract), pmid, source)
                    title = abstract = ""
                pmid = parts[0]
                if parts[1] == "t":
                    title = parts[2]
                else:
                    abstract = parts[2]
            elif not line.strip() and pmid is not None:
                yield Document(pmid, _clean_paragraph(title) + _clean_paragraph(abstract), pmid, source)
                pmid, title, abstract = None, "", ""
    if pmid is not None:
        yield Document(pmid, _clean_paragraph(title) + _clean_paragraph(abstract), pmid, source)


def _grouped_by_pmid(pairs: Iterable[tuple[str, str]], source: str) -> Iterator[Document]:
    groups: dict[str, dict[str, None]] = defaultdict(dict)  # ordered set of sentences per PMID
    for pmid, sentence in pairs:
        sentence = normalize(sentence)
        if sentence:
            groups[pmid][sentence] = None
    for pmid, sentences in groups.items():
        yield Document(pmid, list(sentences), pmid, source)


def _read_rel(path: Path, source: str) -> Iterator[Document]:
    with open_text(path) as handle:
        pairs = [(p[0], p[1]) for p in (line.split("|") for line in _lines(handle)) if len(p) >= 2 and p[0].isdigit()]
    yield from _grouped_by_pmid(pairs, source)


def _read_txt(path: Path, source: str) -> Iterator[Document]:
    with open_text(path) as handle:
        head = [line for _, line in zip(range(1000), _lines(handle), strict=False)]
    if head and all(_ADE_NEG.match(line) for line in head if line.strip()) and any(line.strip() for line in head):
        with open_text(path) as handle:
            matches = (_ADE_NEG.match(line) for line in _lines(handle))
            yield from _grouped_by_pmid(((m.group(1), m.group(2)) for m in matches if m), source)
        return
    blocks = any(not line.strip() for line in head[:-1])
    with open_text(path) as handle:
        number = 0
        if blocks:
            sentences: list[str] = []
            for line in _lines(handle):
                if line.strip():
                    sentences.append(normalize(line))
                elif sentences:
                    number += 1
                    yield Document(f"{source}:{number}", sentences, None, source)
                    sentences = []
            if sentences:
                yield Document(f"{source}:{number + 1}", sentences, None, source)
        else:
            for line in _lines(handle):
                if line.strip():
                    number += 1
                    yield Document(f"{source}:{number}", _clean_paragraph(line), None, source)


READERS = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".pubtator": _read_pubtator,
    ".rel": _read_rel,
    ".txt": _read_txt,
    ".text": _read_txt,
}


def corpus_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand directories (recursively, sorted) to the files a reader understands."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _base_suffix(p) in READERS)
            if not found:
                raise BlurbkitError("no corpus files (.jsonl .json .csv .PubTator .rel .txt, gzip or not)", path=path)
            files.extend(found)
        elif path.is_file():
            if _base_suffix(path) not in READERS:
                raise BlurbkitError(f"unknown corpus format {_base_suffix(path) or '(no suffix)'!r} "
                                    "(use .jsonl .json .csv .PubTator .rel .txt, optionally .gz)", path=path)
            files.append(path)
        else:
            raise BlurbkitError("corpus not found", path=path)
    return files


def iter_documents(inputs: Iterable[str | Path], *, root: Path | None = None) -> Iterator[Document]:
    """Stream documents from files and folders; ``source`` is the path relative to its input."""
    for item in inputs:
        item = Path(item)
        for path in corpus_files([item]):
            source = str(path.relative_to(item)) if item.is_dir() else path.name
            yield from READERS[_base_suffix(path)](path, source)


def iter_corpus_sentences(inputs: Iterable[str | Path]) -> Iterator[list[str]]:
    for doc in iter_documents(inputs):
        if doc.sentences:
            yield doc.sentences
