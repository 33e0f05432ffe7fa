"""Tagging schemes for NER/PICO: IOB2 ("bio", the default), BIOUL ("bioul") and IO ("io").

Every conversion goes through spans, so a model can learn any scheme while scores are always
computed on the spans of the dataset's own scheme. Decoding is lenient, the way conlleval reads
predictions: an I-/L- tag that does not continue an open span of its type starts a new span, and
stray B/U tags in an IO sequence are read as span starts. IO cannot separate two adjacent spans of
the same type, so bio -> io -> bio merges them (the known loss of the IO scheme).
"""

from __future__ import annotations

from collections.abc import Sequence

from blurbkit.errors import BlurbkitError

SCHEMES = ("bio", "bioul", "io")
Span = tuple[int, int, str]  # [start, end) word indices and the entity type


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or prefix not in ("B", "I", "L", "U", "E", "S"):
        raise BlurbkitError(f"tag {tag!r} is not O or PREFIX-TYPE with prefix B, I, L or U")
    # BIOES spells L/U as E/S: accept both spellings.
    return {"E": "L", "S": "U"}.get(prefix, prefix), kind


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Spans of a tag sequence in any of the schemes (lenient, see the module docstring)."""
    spans: list[Span] = []
    start, kind = -1, ""  # the open span; start = -1 when none is open
    for index, tag in enumerate(tags):
        prefix, tag_kind = _split(tag)
        if prefix == "O":
            if start >= 0:
                spans.append((start, index, kind))
            start = -1
            continue
        continues = start >= 0 and tag_kind == kind and prefix in ("I", "L")
        if not continues:
            if start >= 0:
                spans.append((start, index, kind))
            start, kind = index, tag_kind
        if prefix in ("L", "U"):
            spans.append((start, index + 1, kind))
            start = -1
    if start >= 0:
        spans.append((start, len(tags), kind))
    return spans


def spans_to_tags(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of `length` words in `scheme` for non-overlapping spans."""
    check_scheme(scheme)
    tags = ["O"] * length
    for start, end, kind in spans:
        for index in range(start, end):
            tags[index] = f"I-{kind}"
        if scheme == "bio":
            tags[start] = f"B-{kind}"
        elif scheme == "bioul":
            if end - start == 1:
                tags[start] = f"U-{kind}"
            else:
                tags[start], tags[end - 1] = f"B-{kind}", f"L-{kind}"
    return tags


def convert_tags(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert one sentence's tags from scheme `source` to scheme `target` (via spans)."""
    check_scheme(source)
    check_scheme(target)
    if source == target:
        return list(tags)
    return spans_to_tags(tags_to_spans(tags), len(tags), target)


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise BlurbkitError(f"unknown tagging scheme {scheme!r} (one of {', '.join(SCHEMES)})")
