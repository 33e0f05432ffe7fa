"""Tags <-> spans, the one module that reads and writes NER/PICO tag sequences: readers count
mentions with it, the metric chunks with it, training converts schemes with it and inference
turns predicted tags into entity spans with it.

Schemes: IOB2 ("bio", the default), BIOUL ("bioul"), IO ("io"); IOBES spells L/U as E/S and is
read too. Chunking follows conlleval's startOfChunk / endOfChunk rules (what seqeval's default
mode and the official BLURB NER evaluation do), so every sequence conlleval accepts is read as
conlleval reads it: an ``I-X`` after ``O`` or after another type starts a chunk, ``B-X I-Y`` is
two chunks, a tag after ``L-``/``U-`` starts a new one. IO cannot separate two adjacent spans of
the same type, so bio -> io -> bio merges them (the known loss of the IO scheme).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from blurbkit.errors import BlurbkitError

Span = tuple[int, int, str]  # [start, end) word indices and the entity type

# Tag prefixes each scheme allows (besides O). iob1 and iob2 use the same tags; IO predictions are
# also legal IOB2. "any" is for reading gold files and predictions leniently.
SCHEMES: dict[str, frozenset[str]] = {
    "io": frozenset("I"),
    "iob1": frozenset("BI"),
    "iob2": frozenset("BI"),
    "bio": frozenset("BI"),  # = iob2, the name the training code uses
    "iobes": frozenset("BIES"),
    "bioes": frozenset("BIES"),
    "bioul": frozenset("BILU"),
    "any": frozenset("BIESLU"),
}
TRAINING_SCHEMES = ("bio", "bioul", "io")  # what a model can learn to predict
_CONLLEVAL_LETTER = {"L": "E", "U": "S"}


class TagError(BlurbkitError, ValueError):
    """A tag that is not O or PREFIX-TYPE of the scheme (a ValueError for the metric functions)."""


def check_scheme(scheme: str, allowed: Collection[str] = SCHEMES) -> frozenset[str]:
    if scheme not in allowed:
        raise TagError(f"unknown tagging scheme {scheme!r} (one of {', '.join(allowed)})")
    return SCHEMES[scheme]


def tag_problem(tag: str, scheme: str = "any", types: Collection[str] = ()) -> str | None:
    """Why `tag` is not a tag of `scheme` (with an entity type from `types` if given), else None."""
    if tag == "O":
        return None
    prefix, dash, etype = tag.partition("-")
    if not dash or not etype or len(prefix) != 1:
        return f"tag {tag!r} is not O or PREFIX-TYPE"
    if prefix not in check_scheme(scheme):
        if scheme == "any":
            return f"tag {tag!r} is not O or PREFIX-TYPE (prefix one of {', '.join(sorted(SCHEMES['any']))})"
        return f"tag {tag!r}: prefix {prefix}- is not in the {scheme.upper()} scheme"
    if types and etype not in types:
        return f"tag {tag!r}: unknown entity type {etype!r} (known: {', '.join(sorted(types))})"
    return None


def _split(tag: str, scheme: str) -> tuple[str, str]:
    problem = tag_problem(tag, scheme)
    if problem:
        raise TagError(problem)
    if tag == "O":
        return "O", ""
    prefix, _, etype = tag.partition("-")
    return _CONLLEVAL_LETTER.get(prefix, prefix), etype


def tags_to_spans(tags: Sequence[str], scheme: str = "any") -> list[Span]:
    """The [start, end) spans of one sentence's tags, by conlleval's rules (see the module docstring)."""
    found: list[Span] = []
    prev, prev_type, start = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        cur, cur_type = _split(tag, scheme)
        ends = prev in "ES" or (prev in "BI" and cur in "BSO") or (prev != "O" and prev_type != cur_type)
        starts = cur in "BS" or (prev in "ESO" and cur in "EI") or (cur != "O" and prev_type != cur_type)
        if ends:
            found.append((start, i, prev_type))
        if starts:
            start = i
        prev, prev_type = cur, cur_type
    return found


def spans_to_tags(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of `length` words in `scheme` for non-overlapping spans."""
    check_scheme(scheme, TRAINING_SCHEMES)
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
    """One sentence's tags from scheme `source` to scheme `target` (via spans)."""
    check_scheme(source, TRAINING_SCHEMES)
    check_scheme(target, TRAINING_SCHEMES)
    if source == target:
        return list(tags)
    return spans_to_tags(tags_to_spans(tags), len(tags), target)


def scheme_of_labels(labels: Sequence[str]) -> str:
    """The training scheme a label list was built for (model directories saved before the recipe
    recorded it): L-/U- tags mean BIOUL, I- tags alone IO, otherwise IOB2."""
    prefixes = {label.partition("-")[0] for label in labels if label != "O"}
    if prefixes & {"L", "U"}:
        return "bioul"
    if prefixes == {"I"}:
        return "io"
    return "bio"
