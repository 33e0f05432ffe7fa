"""The DDI 2013 XML corpus -> BLURB relation instances, the way BLURB's data generation builds them.

Rules (measured against BLURB's dev.tsv / test.tsv: 2496 + 5716 instances reproduced byte for byte;
docs/ddi_conversion.md has the evidence):
- one instance per ``<pair>``, id = the pair id, label ``DDI-<type>`` or ``DDI-false`` when ddi="false";
- ``charOffset`` ends are inclusive; a discontinuous mention ("80-85;95-120") is masked over its whole
  extent, first start to last end (so "alpha- or beta-adrenergic blocking agents" becomes one @DRUG$);
- the two extents are replaced by ``@DRUG$``; if they overlap, their union becomes one ``@DRUG-DRUG$``;
- every \\r and \\n of the sentence becomes a space (one for one, so offsets stay valid); nothing is
  stripped, so the trailing space of most sentences stays;
- other mentions of the sentence stay plain text; offsets are used as given, even the few that the
  corpus itself shifts by one character (BLURB's files keep the stray letter, e.g. "c@DRUG$in").
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import read_lines

DRUG = "@DRUG$"
DRUG_DRUG = "@DRUG-DRUG$"
Span = tuple[int, int]  # [start, end) in characters


@dataclass(frozen=True)
class Mention:
    spans: tuple[Span, ...]  # the charOffset parts, end-exclusive
    text: str  # the entity's own text attribute, used only to spot corpus offset errors

    @property
    def extent(self) -> Span:
        """What BLURB masks: first start to last end, gaps of a discontinuous mention included."""
        return self.spans[0][0], self.spans[-1][1]


@dataclass(frozen=True)
class Pair:
    id: str
    sentence: str  # \r and \n already turned into spaces
    label: str
    e1: Mention
    e2: Mention
    member: str  # archive member it came from, for messages

    @property
    def offsets_disagree(self) -> bool:
        """True when a mention's offsets do not select its own text (corpus errors, kept as BLURB does)."""
        for mention in (self.e1, self.e2):
            parts = [self.sentence[start:end] for start, end in mention.spans]
            if "".join(parts).replace(" ", "") != mention.text.replace(" ", ""):
                return True
        return False


def normalize(sentence: str) -> str:
    return sentence.replace("\r", " ").replace("\n", " ")


def parse_offsets(value: str, length: int, entity_id: str, where: str) -> tuple[Span, ...]:
    """'10-20;30-40' (inclusive ends) -> ((10, 21), (30, 41)), checked against the sentence length."""
    spans = []
    for part in value.split(";"):
        start, sep, end = part.strip().partition("-")
        if not (sep and start.isdigit() and end.isdigit()) or int(start) > int(end) or int(end) >= length:
            message = f"{entity_id}: bad charOffset {value!r} for a sentence of {length} characters"
            raise BlurbkitError(message, path=where)
        spans.append((int(start), int(end) + 1))
    return tuple(spans)


def mask(sentence: str, e1: Span, e2: Span) -> tuple[str, list[Span]]:
    """Replace the two extents by placeholders; return the text and the placeholder spans (e1, e2)."""
    if e1[0] < e2[1] and e2[0] < e1[1]:
        start, end = min(e1[0], e2[0]), max(e1[1], e2[1])
        span = (start, start + len(DRUG_DRUG))
        return sentence[:start] + DRUG_DRUG + sentence[end:], [span, span]
    first, second = sorted((e1, e2))
    text = sentence[: first[0]] + DRUG + sentence[first[1] : second[0]] + DRUG + sentence[second[1] :]
    shift = len(DRUG) - (first[1] - first[0])
    spans = [(first[0], first[0] + len(DRUG)), (second[0] + shift, second[0] + shift + len(DRUG))]
    return text, spans if e1 <= e2 else spans[::-1]


def span_entities(spans: list[Span]) -> list[dict[str, Any]]:
    return [{"start": start, "end": end, "type": "DRUG"} for start, end in spans]


def to_record(pair: Pair) -> dict[str, Any]:
    """The canonical relation record of one converted pair (schema.py)."""
    text, spans = mask(pair.sentence, pair.e1.extent, pair.e2.extent)
    return {
        "id": pair.id,
        "text": text,
        "label": pair.label,
        "entities": span_entities(spans),
        "original": original(pair),
    }


def original(pair: Pair) -> dict[str, Any]:
    # A discontinuous mention contributes its first contiguous span: a marker input needs one span each.
    firsts = [pair.e1.spans[0], pair.e2.spans[0]]
    return {"text": pair.sentence, "entities": span_entities(firsts)}


def _attr(element: ET.Element, name: str, where: str) -> str:
    value = element.get(name)
    if value is None:
        raise BlurbkitError(f"<{element.tag} id={element.get('id')!r}> lacks {name!r}", path=where)
    return value


def pairs_from_xml(data: bytes, where: str) -> list[Pair]:
    """All pairs of one XML document, in document order."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise BlurbkitError(f"XML parse error ({err})", path=where, line=err.position[0]) from None
    pairs = []
    for sentence in root.iter("sentence"):
        text = normalize(_attr(sentence, "text", where))
        mentions = {}
        for entity in sentence.iter("entity"):
            entity_id = _attr(entity, "id", where)
            spans = parse_offsets(_attr(entity, "charOffset", where), len(text), entity_id, where)
            mentions[entity_id] = Mention(spans, entity.get("text", ""))
        for pair in sentence.iter("pair"):
            pair_id = _attr(pair, "id", where)
            ends = [mentions.get(_attr(pair, key, where)) for key in ("e1", "e2")]
            if ends[0] is None or ends[1] is None:
                raise BlurbkitError(f"pair {pair_id} names an entity its sentence does not have", path=where)
            ddi = pair.get("ddi")
            if ddi not in ("true", "false"):
                raise BlurbkitError(f"pair {pair_id} has ddi={ddi!r} (expected true or false)", path=where)
            label = f"DDI-{_attr(pair, 'type', where)}" if ddi == "true" else "DDI-false"
            pairs.append(Pair(pair_id, text, label, ends[0], ends[1], where))
    return pairs


def read_index(path: Path) -> list[tuple[int, str]]:
    """A BLURB split index: (line number, archive-relative XML path) for each non-blank line."""
    return [(number, line.strip()) for number, line in enumerate(read_lines(path), start=1) if line.strip()]


def read_archive(tarball: Path) -> dict[str, bytes]:
    """Every XML member of the corpus tarball, keyed by its path below the top folder
    ("train_dataset/MedLine/19489169.xml"), which is how the split indexes name them."""
    if not tarball.is_file():
        raise BlurbkitError("file not found", path=tarball)
    members = {}
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".xml"):
                    handle = archive.extractfile(member)
                    data = handle.read() if handle else b""
                    members[member.name] = data
                    if "/" in member.name:
                        members.setdefault(member.name.partition("/")[2], data)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise BlurbkitError(f"not a readable .tar.gz ({err})", path=tarball) from None
    if not members:
        raise BlurbkitError("no XML files in the archive", path=tarball)
    return members


def convert_split(tarball: Path, index: Path, archive: dict[str, bytes] | None = None) -> list[Pair]:
    """The pairs of every document the split index lists, in index order (`archive`: already read)."""
    archive = read_archive(tarball) if archive is None else archive
    pairs: list[Pair] = []
    for number, name in read_index(index):
        if name not in archive:
            raise BlurbkitError(f"{name!r} is not in {tarball.name}", path=index, line=number)
        pairs.extend(pairs_from_xml(archive[name], f"{tarball}!{name}"))
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise BlurbkitError(f"pair id {pair.id} occurs twice", path=pair.member)
        seen.add(pair.id)
    return pairs
