"""AIMed protein-protein interaction (not in BLURB): 10 document-disjoint folds ``test_k.json``
(JSON lines: ``text``, ``relation[0]`` with ``relation_type`` positive/negative and character spans
``entity_1_idx`` / ``entity_2_idx``).

Splits for fold k (ReadOptions.fold, default 0): test = fold k, dev = fold (k+1) % 10, train = the
other eight. The published cross-validation (BERT-RE) trains on the nine other folds and has no
dev set; blurbkit holds the next fold out as dev so that model selection never sees test.

``text`` masks the pair's two mentions with @PROTEIN$ (entity 1 first); ``original`` keeps the
unmasked sentence and the mention spans. When the two mentions overlap (164 pairs, e.g.
"lymphotoxin beta" inside "lymphotoxin beta receptor"), their union becomes one
@PROTEIN-PROTEIN$ standing for both entities, BLURB's convention for @CHEM-GENE$ / @DRUG-DRUG$.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blurbkit.data.readers import check_label, jsonl_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import Record, SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec

Span = tuple[int, int]


def fold_files(spec: DatasetSpec, source_dir: Path) -> list[Path]:
    pattern = spec.files.get("folds")
    if not pattern or "{k}" not in pattern:
        raise BlurbkitError(
            f"dataset {spec.name!r}: files.folds must be a pattern with {{k}}, e.g. 'test_{{k}}.json'",
            path=spec.origin,
        )
    paths = []
    while (source_dir / pattern.format(k=len(paths))).exists():
        paths.append(source_dir / pattern.format(k=len(paths)))
    if len(paths) < 3:
        raise BlurbkitError(
            f"need at least 3 folds {pattern.format(k=len(paths))!r} ... (found {len(paths)})",
            path=source_dir,
        )
    return paths


def fold_split(fold: int, folds: int) -> dict[str, list[int]]:
    """Which fold numbers make up train, dev and test."""
    if not 0 <= fold < folds:
        raise BlurbkitError(f"--fold must be between 0 and {folds - 1}, not {fold}")
    dev = (fold + 1) % folds
    return {"train": [k for k in range(folds) if k not in (fold, dev)], "dev": [dev], "test": [fold]}


def _span(value: Any, text: str, path: Path, line: int) -> Span:
    """The extent of a mention given as [[start, end], ...] (first start to last end)."""
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) for i in p) for p in value)
    )
    if not ok or not 0 <= value[0][0] < value[-1][1] <= len(text):
        raise BlurbkitError(
            f"bad entity span {value!r} for a sentence of {len(text)} characters", path=path, line=line
        )
    return value[0][0], value[-1][1]


def mask(text: str, e1: Span, e2: Span, t1: str, t2: str) -> tuple[str, list[Span]]:
    """Replace the two mentions by placeholders; return the text and the placeholder spans (e1, e2)."""
    if e1[0] < e2[1] and e2[0] < e1[1]:
        start, end = min(e1[0], e2[0]), max(e1[1], e2[1])
        token = f"@{t1}-{t2}$"
        return text[:start] + token + text[end:], [(start, start + len(token))] * 2
    (first, tf), (second, ts) = sorted([(e1, t1), (e2, t2)])
    a, b = f"@{tf}$", f"@{ts}$"
    masked = text[: first[0]] + a + text[first[1] : second[0]] + b + text[second[1] :]
    shift = len(a) - (first[1] - first[0])
    spans = [(first[0], first[0] + len(a)), (second[0] + shift, second[0] + shift + len(b))]
    return masked, spans if e1 <= e2 else spans[::-1]


def _record(row: dict[str, Any], spec: DatasetSpec, path: Path, line: int) -> Record:
    relations, text = row["relation"], row["text"]
    if not isinstance(relations, list) or len(relations) != 1 or not isinstance(text, str):
        raise BlurbkitError("expected a text and exactly one relation", path=path, line=line)
    rel = relations[0]
    label = check_label(str(rel.get("relation_type")), spec, path, line)
    spans = [_span(rel.get(f"entity_{i}_idx"), text, path, line) for i in (1, 2)]
    types = [str(rel.get(f"entity_{i}_type", "")).upper() for i in (1, 2)]
    for kind in types:
        if spec.entity_types and kind not in spec.entity_types:
            raise BlurbkitError(
                f"entity type {kind!r} is not one of {', '.join(spec.entity_types)}", path=path, line=line
            )
    masked, placeholders = mask(text, spans[0], spans[1], *types)
    return {
        "id": str(row["id"]),
        "text": masked,
        "label": label,
        "entities": [
            {"start": s, "end": e, "type": t} for (s, e), t in zip(placeholders, types, strict=True)
        ],
        "original": {
            "text": text,
            "entities": [{"start": s, "end": e, "type": t} for (s, e), t in zip(spans, types, strict=True)],
        },
    }


def read_aimed(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    paths = fold_files(spec, source_dir)
    chosen = fold_split(options.fold, len(paths))[split]
    records, files = [], []
    for k in chosen:
        files.append(paths[k])
        records.extend(
            _record(row, spec, paths[k], line)
            for line, row in jsonl_rows(paths[k], ("id", "text", "relation"))
        )
    overlap = sum(r["entities"][0]["start"] == r["entities"][1]["start"] for r in records)
    notes = [
        f"fold(s) {', '.join(map(str, chosen))} of {len(paths)} for --fold {options.fold} "
        f"(test = fold k, dev = fold k+1 mod {len(paths)}, train = the other {len(paths) - 2}; the published "
        f"cross-validation trains on all {len(paths) - 1} other folds with no dev set)"
    ]
    if overlap:
        notes.append(f"{overlap} pairs whose mentions overlap are masked as one @PROTEIN-PROTEIN$")
    return SplitData(records, files, notes)


READERS.register("aimed")(read_aimed)
