"""The canonical record of each task type: what `blurbkit prepare` writes, one JSON object a line.

Every record has a stable string ``id`` (the source's own where it has one, else ``{dataset}-{split}-{n}``).

ner / pico        {"id", "doc_id": str | None, "tokens": [str], "tags": [str]}
                  tags in the dataset's own scheme (IOB2 for NER, IO I-PAR/I-INT/I-OUT for PICO);
                  one record per sentence, in file order.
relation          {"id", "text": str, "label": str,
                   "entities": [{"start": int, "end": int, "type": str}, ...]}
                  ``text`` is the BLURB input with the pair's mentions replaced by type tokens
                  (@CHEMICAL$, @GENE$, @DRUG$, @DISEASE$); ``entities`` are the character spans of
                  those placeholders in ``text`` (first = entity 1).
                  Optional ``"original": {"text": str, "entities": [...]}`` holds the unmasked sentence
                  and the pair's character spans where the distribution has them (DDI from XML, AIMed),
                  which the entity-marker and original-text relation inputs need.
similarity        {"id", "text_a", "text_b", "score": float}
doc_classification {"id", "text", "labels": [label names],
                   "sentences": [{"id", "text", "labels"}] (optional: the sentence-level form)}
qa                {"id", "question", "context", "label"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]


@dataclass
class SplitData:
    """What a reader returns for one split."""

    records: list[Record]
    files: list[Path]  # the source files read, hashed into the manifest
    notes: list[str] = field(default_factory=list)  # deviations from the published benchmark
