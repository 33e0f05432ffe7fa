"""`blurbkit corpus build`: many sources (``corpus.py`` reads them) cleaned, deduplicated and filtered
against BLURB's test sets into one corpus file.

The written corpus is gzip JSON lines (``.jsonl.gz``), one document a line:
``{"id", "pmid", "source", "sentences": [...]}``; or plain text (``.txt[.gz]``): one sentence a line,
a blank line between documents. Everything streams: only hashes are kept in memory.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write
from blurbkit.pretrain.corpus import Document, corpus_files, iter_documents
from blurbkit.pretrain.text import digest, word_tokens


def check_not_an_input(out: str | Path, inputs: list[str | Path]) -> None:
    """The output replaces its path only after reading: as one of the inputs, or inside an input
    folder (read as input by the next run), it would silently replace or join the corpus it came from."""
    target = Path(out).resolve()
    for item in inputs:
        source = Path(item).resolve()
        if target == source or (source.is_dir() and source in target.parents):
            where = "an input" if target == source else f"inside the input folder {item}"
            raise BlurbkitError(f"the output is {where}; write it somewhere else", path=out)


@contextlib.contextmanager
def corpus_writer(out: Path) -> Iterator[Any]:
    """``write(doc)`` into a new corpus file (format by suffix), atomically."""
    name = out.name.lower()
    gz = name.endswith(".gz")
    base = name[:-3] if gz else name
    if not base.endswith((".jsonl", ".txt")):
        raise BlurbkitError("output must end in .jsonl, .jsonl.gz, .txt or .txt.gz", path=out)
    as_text = base.endswith(".txt")
    with atomic_write(out, "wb") as raw:
        binary: Any = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) if gz else raw
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
        first = [True]

        def write(doc: Document) -> None:
            if as_text:
                if not first[0]:
                    text.write("\n")
                text.write("\n".join(doc.sentences) + "\n")
            else:
                text.write(json.dumps(doc.to_json(), ensure_ascii=False) + "\n")
            first[0] = False

        try:
            yield write
        except OSError as err:
            raise BlurbkitError(f"cannot write the corpus ({err.strerror or err}); nothing was written", path=out) from None
        text.flush()
        text.detach()
        if gz:
            binary.close()


class _DocumentGate:
    """Why a document is left out of the corpus (None: kept, and remembered for the duplicate checks):
    too short, a PMID or text seen before, or text of a BLURB test set (PMID, sentence, or at least
    `min_windows` shared word windows)."""

    def __init__(self, test_index: Any, min_words: int, min_windows: int) -> None:
        self.test_index, self.min_words, self.min_windows = test_index, min_words, min_windows
        self.seen_text: set[bytes] = set()
        self.seen_pmid: set[str] = set()

    def why_dropped(self, doc: Document, words: list[str]) -> str | None:
        if len(words) < self.min_words:
            return "too_short"
        if doc.pmid is not None and doc.pmid in self.seen_pmid:
            return "duplicate_pmid"
        key = digest(" ".join(words))
        if key in self.seen_text:
            return "duplicate_text"
        reason = self._in_test_sets(doc, words)
        if reason is None:
            self.seen_text.add(key)
            if doc.pmid is not None:
                self.seen_pmid.add(doc.pmid)
        return reason

    def _in_test_sets(self, doc: Document, words: list[str]) -> str | None:
        index = self.test_index
        if index is None:
            return None
        if doc.pmid is not None and doc.pmid in index.pmids:
            return "test_pmid"
        if any(index.sentence_hit(s) for s in doc.sentences):
            return "test_sentence"
        if self.min_windows > 0 and index.window_hits(words, self.min_windows) >= self.min_windows:
            return "test_overlap"
        return None


def build_corpus(
    inputs: list[str | Path],
    out: str | Path,
    *,
    test_index: Any = None,
    min_words: int = 20,
    min_windows: int = 2,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Read, normalise, split, dedupe and test-filter ``inputs`` into ``out``; returns the report."""
    out = Path(out)
    check_not_an_input(out, inputs)
    dropped: Counter[str] = Counter()
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    gate = _DocumentGate(test_index, min_words, min_windows)
    kept = sentences_kept = words_kept = read = 0
    files = corpus_files(inputs)
    docs = iter_documents(inputs)
    if progress:
        from tqdm import tqdm

        docs = tqdm(docs, desc="corpus", unit=" docs", mininterval=2.0)
    with corpus_writer(out) as write:
        for doc in docs:
            if limit is not None and kept >= limit:
                break
            read += 1
            top = doc.source.split("/")[0]
            per_source[top]["read"] += 1
            words = [w for s in doc.sentences for w in word_tokens(s)]
            reason = gate.why_dropped(doc, words)
            if reason is not None:
                dropped[reason] += 1
                per_source[top][reason] += 1
                continue
            write(doc)
            kept += 1
            sentences_kept += len(doc.sentences)
            words_kept += len(words)
            per_source[top]["kept"] += 1
    if kept == 0:
        out.unlink(missing_ok=True)
        raise BlurbkitError(f"no documents kept out of {read} read (dropped: {dict(dropped) or 'none'}); "
                            "is the input a text corpus?", path=files[0] if files else None)
    return {
        "out": str(out),
        "files": len(files),
        "documents_read": read,
        "documents_kept": kept,
        "sentences_kept": sentences_kept,
        "words_kept": words_kept,
        "dropped": dict(sorted(dropped.items())),
        "by_source": {k: dict(v) for k, v in sorted(per_source.items())},
        "sentence_splitter": "blurbkit.pretrain.text (rule-based: .!? + space, abbreviation/initial/case guards)",
        "test_filter": None if test_index is None else {
            "pmids": len(test_index.pmids),
            "sentence_keys": len(test_index.keys),
            "windows": len(test_index.windows),
            "window_words": test_index.window,
            "min_shared_windows": min_windows,
            "sources": test_index.sources,
        },
    }
