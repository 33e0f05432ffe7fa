"""The tokenised corpus on disk: built once, streaming, and memory-mapped.

``DIR/tokens.bin`` holds the ids (uint16/uint32), all sentences back to back with one [SEP] after
every document; ``sentences.npy`` the start offset of each sentence, plus the end; ``docs.npy`` the
first sentence of each document, plus the end. A corpus larger than memory trains fine. The cache is
keyed by the corpus files' content signature and the tokenizer's, and rebuilt when either changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write, clean_stale

CACHE_VERSION = 2


def plain_backend(tokenizer):
    """A copy of the fast backend without padding or truncation.

    Some model tokenizers (sentence-transformers' MiniLM among them) ship with fixed padding and
    truncation to 128 in tokenizer.json; left on, every sentence of the corpus would become 128 ids.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


def tokenizer_signature(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    digest = hashlib.sha256("\n".join(tok for tok, _ in vocab).encode("utf-8"))
    digest.update(repr(tokenizer.backend_tokenizer.normalizer.__getstate__()).encode())
    return digest.hexdigest()[:16]


def corpus_signature(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class TokenCache:
    tokens: np.ndarray  # memmap of ids
    sentences: np.ndarray  # sentence start offsets, len = n_sentences + 1
    docs: np.ndarray  # first sentence index of each doc, len = n_docs + 1
    meta: dict[str, Any]

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.save(handle, array)


def build_token_cache(inputs: list[str | Path], tokenizer, cache_dir: Path, *, progress: bool = False,
                      max_docs: int | None = None) -> TokenCache:
    """Tokenise the corpus into ``cache_dir`` unless a cache for the same corpus and vocabulary is there."""
    from blurbkit.pretrain.corpus import corpus_files, iter_documents

    files = corpus_files(inputs)
    signature = {"version": CACHE_VERSION, "corpus": corpus_signature(files), "tokenizer": tokenizer_signature(tokenizer),
                 "max_docs": max_docs}
    meta_path = cache_dir / "meta.json"
    if _cache_matches(meta_path, signature):
        return load_token_cache(cache_dir)
    if tokenizer.sep_token_id is None:
        raise BlurbkitError("the tokenizer has no [SEP] token; MLM pretraining needs a BERT-style tokenizer")
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    docs: Iterable = iter_documents(inputs)
    if progress:
        from tqdm import tqdm

        docs = tqdm(docs, desc="tokenise", unit=" docs", mininterval=2.0)
    clean_stale(cache_dir / "tokens.bin")  # what a killed earlier build left (GBs, possibly)
    handle, tmp = tempfile.mkstemp(prefix=".tokens.bin.", suffix=".tmp", dir=cache_dir)  # clean_stale's pattern
    os.close(handle)
    writer = _TokenWriter(Path(tmp), tokenizer)
    with writer:
        n_docs = 0
        for doc in docs:
            if max_docs is not None and n_docs >= max_docs:
                break
            if doc.sentences:
                writer.add(doc.sentences)
                n_docs += 1
    if writer.offset == 0:
        writer.path.unlink(missing_ok=True)
        raise BlurbkitError("the corpus has no text (no tokens after tokenisation)", path=files[0] if files else None)
    os.replace(writer.path, cache_dir / "tokens.bin")
    sentences, doc_first = writer.spans()
    _save_npy(cache_dir / "sentences.npy", sentences)
    _save_npy(cache_dir / "docs.npy", doc_first)
    meta = dict(signature, dtype=np.dtype(writer.dtype).name, n_tokens=writer.offset, n_sentences=len(sentences),
                n_docs=len(doc_first) - 1, files=[str(p) for p in files])
    with atomic_write(meta_path) as handle:
        json.dump(meta, handle, indent=2)
    return load_token_cache(cache_dir)


def _cache_matches(meta_path: Path, signature: dict[str, Any]) -> bool:
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and all(meta.get(k) == v for k, v in signature.items())


class _TokenWriter:
    """Documents' sentences -> one flat token file (each document's sentences, then [SEP]), with where
    every sentence and document starts. Documents are tokenised 256 at a time (one batch call)."""

    BATCH = 256

    def __init__(self, path: Path, tokenizer) -> None:
        self.path, self.sep = path, tokenizer.sep_token_id
        self.backend = plain_backend(tokenizer)
        self.dtype = np.uint16 if len(tokenizer) <= 65535 else np.uint32
        self.offset = 0  # tokens written
        self.sentence_starts: list[int] = []
        self.doc_starts: list[int] = []  # index of each document's first sentence
        self.sentence_ends: list[int] = []  # end of each document's last sentence (before its [SEP])
        self.pending: list[list[str]] = []

    def __enter__(self) -> _TokenWriter:
        self.out = open(self.path, "wb")  # noqa: SIM115 (closed by __exit__)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self.out.close()
            if exc[0] is not None:  # a corpus that failed half-way leaves no half-written token file
                self.path.unlink(missing_ok=True)

    def add(self, sentences: list[str]) -> None:
        self.pending.append(sentences)
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        encodings = iter(self.backend.encode_batch([s for doc in self.pending for s in doc], add_special_tokens=False))
        for doc in self.pending:
            ids: list[int] = []
            for _ in doc:
                encoded = next(encodings).ids
                if not encoded:
                    continue
                if not ids:
                    self.doc_starts.append(len(self.sentence_starts))
                self.sentence_starts.append(self.offset + len(ids))
                ids.extend(encoded)
            if ids:
                ids.append(self.sep)
                self.out.write(np.asarray(ids, dtype=self.dtype).tobytes())
                self.offset += len(ids)
                self.sentence_ends.append(self.offset - 1)
        self.pending.clear()

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """([start, end) of every sentence, each document's first sentence + the total). A sentence
        ends where the next one starts, except the last of each document, which ends before its [SEP]."""
        starts = np.asarray(self.sentence_starts, dtype=np.int64)
        doc_first = np.asarray(self.doc_starts + [len(starts)], dtype=np.int64)
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[doc_first[1:] - 1] = np.asarray(self.sentence_ends, dtype=np.int64)
        return np.stack([starts, ends], axis=1), doc_first


def load_token_cache(cache_dir: Path) -> TokenCache:
    try:
        meta = json.loads((cache_dir / "meta.json").read_text("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("meta.json is not an object")
        tokens = np.memmap(cache_dir / "tokens.bin", dtype=np.dtype(meta["dtype"]), mode="r")
        sentences = np.load(cache_dir / "sentences.npy")  # allow_pickle stays False: arrays only
        docs = np.load(cache_dir / "docs.npy")
        n_tokens = meta["n_tokens"]
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        why = f"no {err}" if isinstance(err, KeyError) else str(err)
        raise BlurbkitError(f"token cache is unreadable ({why}); delete it to rebuild", path=cache_dir) from None
    if tokens.shape[0] != n_tokens:
        raise BlurbkitError("token cache is truncated; delete it to rebuild", path=cache_dir)
    return TokenCache(tokens, sentences, docs, meta)


# ---------------------------------------------------------------- examples
