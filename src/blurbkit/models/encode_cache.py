"""Tokenise once: TransformInput's output kept on disk and reused by later runs.

The key covers everything the examples depend on: the tokenizer (its full serialised form,
vocabulary and added tokens included), the transform and the source of its module, the maximum
length and the records themselves. Entries are JSON (no pickles) under
``$BLURBKIT_CACHE/encoded/`` (default cache: ``$BLURBKIT_HOME/cache``); an unreadable entry is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from blurbkit.fileio import atomic_write
from blurbkit.models.transforms import Example
from blurbkit.paths import cache_root

TUPLE_FIELDS = ("window",)  # JSON turns tuples into lists; give them back as they were made


def _tokenizer_digest(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return hashlib.sha256(repr(sorted(tokenizer.get_vocab().items())).encode("utf-8")).hexdigest()
    state = json.loads(backend.to_str())
    for name in ("truncation", "padding"):  # set by each call, not part of what the tokenizer is
        state.pop(name, None)
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()


def cache_key(records: Sequence[dict], transform: Callable[..., Any], max_length: int, tokenizer: Any) -> str:
    digest = hashlib.sha256()
    module = sys.modules.get(transform.__module__)
    source = Path(module.__file__).read_bytes() if module and getattr(module, "__file__", None) else b""
    for part in (_tokenizer_digest(tokenizer), transform.__module__, transform.__name__, str(max_length)):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(source)
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()[:32]


def _path(key: str) -> Path:
    return cache_root() / "encoded" / f"{key}.json"


def load(key: str) -> list[Example] | None:
    try:
        examples = json.loads(_path(key).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    for example in examples:
        for name in TUPLE_FIELDS:
            if name in example:
                example[name] = tuple(example[name])
    return examples


def store(key: str, examples: list[Example]) -> None:
    try:
        with atomic_write(_path(key)) as handle:
            json.dump(examples, handle, separators=(",", ":"))
    except (OSError, TypeError) as err:  # unwritable home, unusual example fields: just not cached
        print(f"blurbkit: note: could not cache tokenised inputs ({err})", file=sys.stderr)
