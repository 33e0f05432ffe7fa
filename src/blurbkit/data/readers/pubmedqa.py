"""PubMedQA (PQA-L), BLURB split: LinkBERT's JSON lines ``{"id": PMID, "sentence1": question,
"sentence2": contexts joined, "label": yes/no/maybe}`` (BLURB = official split script, seed 0, fold 0).

The test labels are cross-checked against the official ``official/test_ground_truth.json`` when it
is present: a test set whose ids or labels disagree with the official ground truth is an error,
because the score would then not be PubMedQA's.
"""

from __future__ import annotations

from pathlib import Path

from blurbkit.data.readers import check_label, jsonl_rows, split_file
from blurbkit.data.readers.base import READERS, ReadOptions
from blurbkit.data.schema import Record, SplitData
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import read_json
from blurbkit.tasks.registry import DatasetSpec

GROUND_TRUTH = "official/test_ground_truth.json"


def cross_check(records: list[Record], lines: list[int], path: Path, truth_path: Path) -> str:
    truth = read_json(truth_path)
    if not isinstance(truth, dict):
        raise BlurbkitError("expected a JSON object mapping PMID to label", path=truth_path)
    for record, line in zip(records, lines, strict=True):
        if record["id"] not in truth:
            raise BlurbkitError(f"test id {record['id']} is not in {GROUND_TRUTH}", path=path, line=line)
        if truth[record["id"]] != record["label"]:
            raise BlurbkitError(
                f"label {record['label']!r} of {record['id']} disagrees with {GROUND_TRUTH} ({truth[record['id']]!r})",
                path=path,
                line=line,
            )
    if len(truth) != len(records):
        raise BlurbkitError(
            f"{GROUND_TRUTH} has {len(truth)} questions, {path.name} has {len(records)}", path=path
        )
    return f"all {len(records)} labels equal the official {GROUND_TRUTH}"


def read_pubmedqa(spec: DatasetSpec, source_dir: Path, split: str, options: ReadOptions) -> SplitData:
    path = split_file(spec, source_dir, split)
    records, lines = [], []
    for number, row in jsonl_rows(path, ("id", "sentence1", "sentence2", "label"), texts=("sentence1", "sentence2")):
        label = check_label(str(row["label"]), spec, path, number)
        records.append(
            {"id": str(row["id"]), "question": row["sentence1"], "context": row["sentence2"], "label": label}
        )
        lines.append(number)
    data = SplitData(records, [path])
    truth_path = source_dir / GROUND_TRUTH
    if split == "test" and truth_path.exists():
        data.notes.append(cross_check(records, lines, path, truth_path))
        data.files.append(truth_path)
    return data


READERS.register("pubmedqa")(read_pubmedqa)
