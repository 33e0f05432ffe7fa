"""BIOSSES, BLURB split: header ``pair_id<TAB>sent1<TAB>sent2<TAB>score``; score = mean of five
annotators, 0-4. The id is the original BIOSSES pair number (unique across splits)."""

from __future__ import annotations

import math
from pathlib import Path

from blurbkit.data.readers import split_file, tsv_rows
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec

HEADER = ("pair_id", "sent1", "sent2", "score")
SCORE_RANGE = (0.0, 4.0)


def read_biosses(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    records, seen = [], set()
    for number, (pair_id, text_a, text_b, raw) in tsv_rows(path, 4, header=HEADER):
        try:
            score = float(raw)
        except ValueError:
            raise BlurbkitError(f"score {raw!r} is not a number", path=path, line=number) from None
        # BIOSSES scores are 0-4; a user's own similarity set may use another scale, so only finite.
        low, high = SCORE_RANGE if spec.in_blurb else (-math.inf, math.inf)
        if not math.isfinite(score) or not low <= score <= high:
            raise BlurbkitError(f"score {raw} is not a finite number in {low}-{high}", path=path, line=number)
        if pair_id in seen:
            raise BlurbkitError(f"pair_id {pair_id!r} occurs twice", path=path, line=number)
        seen.add(pair_id)
        records.append({"id": pair_id, "text_a": text_a, "text_b": text_b, "score": score})
    return SplitData(records, [path])


READERS.register("biosses")(read_biosses)
