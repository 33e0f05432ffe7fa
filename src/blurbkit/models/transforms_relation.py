"""Relation-extraction inputs beyond entity dummification (the BLURB default, transform "text").

- "markers":  the unmasked sentence with the pair's mentions wrapped in [E1] ... [/E1] and
  [E2] ... [/E2]; the four markers are new vocabulary entries (``special_tokens``, which
  train/run.py adds to the tokenizer and the embeddings). Entity spans cover marker to marker,
  so the entity_start featurizer reads the [E1]/[E2] encodings.
- "original": the unmasked sentence as is; entity spans are the mentions' tokens.

Both need the record's ``original`` {text, entities}, which only distributions with unmasked
text and entity offsets have (DDI rebuilt from the XML corpus, AIMed); ChemProt and GAD are
distributed with masked text only, so there these inputs are refused before training.
"""

from __future__ import annotations

from collections.abc import Sequence

from blurbkit.errors import BlurbkitError
from blurbkit.models.transforms import TRANSFORMS, Example, TransformContext, _single_text

MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")


def require_original(records: Sequence[dict], what: str) -> None:
    missing = sum(1 for record in records if not (record.get("original") or {}).get("entities"))
    if missing:
        from blurbkit.tasks.registry import original_text_datasets

        raise BlurbkitError(
            f"the {what} relation input needs the unmasked sentence and entity offsets, but {missing} of "
            f"{len(records)} records have no 'original'; datasets that keep them: {', '.join(original_text_datasets())} "
            "(ChemProt and GAD are distributed with masked text only: use the default dummified input)"
        )


def mark_entities(text: str, entities: Sequence[dict]) -> tuple[str, list[dict]]:
    """Insert [E1]/[/E1] and [E2]/[/E2] around the first two entities; return the new text and
    each entity's character span from its opening to its closing marker (nested or identical
    mentions stay properly nested: outer markers outside)."""
    inserts = []  # (position, order key, marker, entity number, is_start)
    for number, entity in enumerate(entities[:2]):
        start, end = int(entity["start"]), int(entity["end"])
        inserts.append((start, (1, -end, number), MARKERS[2 * number], number, True))
        inserts.append((end, (0, -start, -number), MARKERS[2 * number + 1], number, False))
    inserts.sort(key=lambda item: (item[0], item[1]))
    pieces, spans, cursor, length = [], [[0, 0], [0, 0]], 0, 0
    for position, _, marker, number, is_start in inserts:
        pieces.append(text[cursor:position])
        length += position - cursor
        cursor = position
        piece = f" {marker} "
        if is_start:
            spans[number][0] = length + 1
        else:
            spans[number][1] = length + 1 + len(marker)
        pieces.append(piece)
        length += len(piece)
    pieces.append(text[cursor:])
    kinds = [entity.get("type", "") for entity in entities[:2]]
    return "".join(pieces), [{"start": s, "end": e, "type": k} for (s, e), k in zip(spans, kinds, strict=True)]


def _check_markers(ctx: TransformContext) -> None:
    unk = ctx.tokenizer.unk_token_id
    if any(ctx.tokenizer.convert_tokens_to_ids(marker) in (None, unk) for marker in MARKERS):
        raise BlurbkitError(f"the tokenizer lacks the entity markers {', '.join(MARKERS)} (add them as special tokens)")


@TRANSFORMS.register("markers")
def entity_markers(records: Sequence[dict], ctx: TransformContext) -> list[Example]:
    """[CLS] ... [E1] mention [/E1] ... [E2] mention [/E2] ... [SEP] on the unmasked sentence."""
    require_original(records, "entity-marker")
    _check_markers(ctx)
    marked = []
    for record in records:
        text, entities = mark_entities(record["original"]["text"], record["original"]["entities"])
        marked.append({"text": text, "entities": entities})
    return _single_text(marked, ctx, "text")


@TRANSFORMS.register("original")
def original_text(records: Sequence[dict], ctx: TransformContext) -> list[Example]:
    """[CLS] unmasked sentence [SEP]; nothing tells the encoder which mentions form the pair."""
    require_original(records, "original-text")
    plain = [{"text": r["original"]["text"], "entities": r["original"]["entities"]} for r in records]
    return _single_text(plain, ctx, "text")


entity_markers.special_tokens = MARKERS
entity_markers.needs_original = True
entity_markers.requires = ("entity_pair",)
original_text.needs_original = True
original_text.requires = ("entity_pair",)
