"""A new task type is one module and one registry entry: this file registers a toy task type (and a
reader for its files) and runs it through datasets add -> prepare -> finetune -> evaluate -> Predictor
with no change to blurbkit itself."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.data.readers import jsonl_rows, split_file
from blurbkit.data.readers.base import READERS
from blurbkit.data.schema import SplitData
from blurbkit.inference.predictor import Predictor
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.tasks.types import TASK_TYPES, register
from blurbkit.tasks.types.by_id import IdTaskType


def read_toy(spec, source_dir: Path, split: str, options) -> SplitData:
    path = split_file(spec, source_dir, split)
    records = [{"id": row["id"], "text": row["text"], "label": row["label"]} for _, row in jsonl_rows(path, ("id", "text", "label"))]
    return SplitData(records, [path])


class ToySentiment(IdTaskType):
    name = "toy_sentiment"
    title = "Toy sentiment"
    metric = "accuracy"
    blurb_group = "Toy"
    unit = "sentences"
    provides = ("sequence", "text", "single_label")
    file_formats = ("toy_jsonl",)

    def infer_fields(self, records):
        return {"labels": {r["label"] for r in records}}

    def records_from_inputs(self, inputs):  # an override written before the model's transform was passed
        return [dict(record, text=record["text"].lower()) for record in super().records_from_inputs(inputs)]


if "toy_jsonl" not in READERS:
    READERS.register("toy_jsonl")(read_toy)
if "toy_sentiment" not in TASK_TYPES:
    register(ToySentiment())


def _write_split(path: Path, n: int, rng: random.Random) -> None:
    rows = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        word = "good" if label == "pos" else "bad"
        rows.append({"id": f"{path.stem}-{i}", "text": f"the {word} drug was {word} today", "label": label})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_task_type_registered_from_outside_runs_end_to_end(tmp_path, monkeypatch, capsys):
    rng = random.Random(0)
    source = tmp_path / "toy"
    source.mkdir()
    for split, n in (("train", 64), ("dev", 16), ("test", 24)):
        _write_split(source / f"{split}.jsonl", n, rng)
    model = build_tiny_bert(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)

    assert main(["datasets", "add", "toy", "--format", "toy_jsonl", "--source", str(source),
                 "--train", "train.jsonl", "--dev", "dev.jsonl", "--test", "test.jsonl"]) == 0
    assert main(["prepare", "--out", str(tmp_path / "prepared"), "--datasets", "toy"]) == 0
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert manifest["datasets"]["toy"]["splits"]["test"]["measured"] == 24
    run = tmp_path / "run"
    assert main(["finetune", "--dataset", "toy", "--data", str(tmp_path / "prepared"), "--model", str(model),
                 "--out", str(run), "--epochs", "10", "--lr", "5e-4", "--batch-size", "8", "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metric"] == "accuracy" and metrics["test"]["score"] > 0.9  # the toy task is learnable
    capsys.readouterr()
    assert main(["evaluate", "--dataset", "toy", "--split", "test", "--data", str(tmp_path / "prepared"),
                 "--predictions", str(run / "predictions" / "test.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(metrics["test"]["score"], abs=1e-12)
    predictor = Predictor.load(run / "model")
    assert predictor.predict(["the good drug was good today", "the bad drug was bad today"]) == ["pos", "neg"]
