"""One fine-tuning run end to end: data -> model -> train -> test -> run directory.

RUN_DIR/
  run.json        config, library versions, blurbkit commit, sha256 of the data used, notes
  epochs.jsonl    dev metrics after every epoch
  metrics.json    test metrics (+ best dev), wall time, throughput
  predictions/    test (and dev) predictions in `blurbkit evaluate` formats
  model/          the fine-tuned model: AutoModel loads the encoder; BlurbModel.load the whole
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from blurbkit.data.load import load_split, split_notes
from blurbkit.data.readers.base import ReadOptions
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir
from blurbkit.models.featurizers import FEATURIZERS
from blurbkit.models.heads import HEADS
from blurbkit.models.loading import (
    check_vocab_matches,
    load_encoder,
    load_tokenizer,
    read_config,
    resolve_model_dir,
)
from blurbkit.models.model import BlurbModel, ModelRecipe
from blurbkit.models.transforms import TRANSFORMS
from blurbkit.scoring import write_predictions
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.adapters import adapter_for
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.engine import Engine, encode, seed_everything
from blurbkit.train.provenance import blurbkit_commit, library_versions, records_sha256
from blurbkit.train.stabilise import drop_top_layers, freeze_lower_half, reinit_top_layers

PREDICTION_SUFFIX = {"ner": "tsv", "pico": "tsv"}


EVAL_SUBSAMPLE_SEED = 0  # dev/test subsamples are the same for every seed, so seeds stay comparable


def subsample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `limit` records, kept in file order."""
    if limit is None or limit >= len(records):
        return records
    chosen = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in chosen]


def check_run_dir(out: Path | None, overwrite: bool) -> None:
    if out is not None and out.exists() and any(out.iterdir()) and not overwrite:
        what = "another run" if (out / "run.json").exists() else "other files"
        raise BlurbkitError(f"output directory holds {what}; choose a new --out or pass --overwrite", path=out)


def check_parts_apply(recipe: ModelRecipe, task_type: str) -> None:
    """Refuse a part that does not fit the task (CRF on classification, ...) before any training."""
    for kind, registry, name in (
        ("transform", TRANSFORMS, recipe.transform),
        ("featurizer", FEATURIZERS, recipe.featurizer),
        ("head", HEADS, recipe.head),
    ):
        allowed = getattr(registry.get(name), "task_types", None)
        if allowed is not None and task_type not in allowed:
            raise BlurbkitError(f"{kind} {name!r} does not apply to {task_type} tasks (it applies to: {', '.join(allowed)})")


def run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune, score on test, and (when config.out is set) write the run directory."""
    check_run_dir(config.out, config.overwrite)
    spec = get_dataset(config.dataset)
    options = ReadOptions(pico_train_from_dev=config.pico_train_from_dev, fold=config.fold)
    model_dir = resolve_model_dir(config.model)
    splits = {name: load_split(spec.name, name, config.data, options) for name in ("train", "dev", "test")}
    notes = list(split_notes(spec.name, config.data, options))
    full_train = len(splits["train"])
    splits["train"] = subsample(splits["train"], config.max_train_examples, config.seed)
    if len(splits["train"]) < full_train:
        notes.append(f"BUDGET RUN: trained on a seeded subsample of {len(splits['train'])} of {full_train} train records")
    dev_eval = subsample(splits["dev"], config.max_eval_examples, EVAL_SUBSAMPLE_SEED)
    test = subsample(splits["test"], config.max_test_examples, EVAL_SUBSAMPLE_SEED)
    if len(test) < len(splits["test"]):
        notes.append(f"BUDGET RUN: test scored on a seeded subsample of {len(test)} of {len(splits['test'])} test records")
    if config.max_length and config.max_length < spec.max_length and not spec.is_token_task:
        # Token tasks lose no word (long inputs are windowed); sequence tasks are cut short.
        notes.append(f"inputs truncated at {config.max_length} subwords (protocol: {spec.max_length})")
    if len(splits["train"]) == 0:
        raise BlurbkitError(f"dataset {spec.name}: the train split is empty")

    seed_everything(config.seed)
    tokenizer = load_tokenizer(model_dir)
    check_vocab_matches(tokenizer, read_config(model_dir), model_dir)
    adapter = adapter_for(spec, splits["train"], scheme=config.scheme)
    recipe = ModelRecipe(
        dataset=spec.name,
        task_type=spec.task_type,
        labels=adapter.labels,
        transform=config.transform or adapter.transform,
        featurizer=config.featurizer or adapter.featurizer,
        head=config.head or adapter.head,
        max_length=config.max_length or spec.max_length,
        options=dict(config.part_options),
    )
    check_parts_apply(recipe, spec.task_type)
    encoder = load_encoder(model_dir, hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout)
    drop_top_layers(encoder, config.drop_layers)
    reinit_top_layers(encoder, config.reinit_layers)
    if config.freeze_lower_half:
        freeze_lower_half(encoder)
    extra_tokens = getattr(TRANSFORMS.get(recipe.transform), "special_tokens", ())
    if extra_tokens:  # e.g. entity start/end markers: new vocabulary entries with trained embeddings
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
        encoder.resize_token_embeddings(len(tokenizer))
    model = BlurbModel(encoder, recipe, dropout=config.dropout)
    engine = Engine(model, tokenizer, adapter, spec, config)

    started = time.perf_counter()
    train = encode(splits["train"], adapter, recipe, tokenizer, cache=config.encode_cache)
    dev = encode(dev_eval, adapter, recipe, tokenizer, cache=config.encode_cache)
    test_data = encode(test, adapter, recipe, tokenizer, cache=config.encode_cache)
    encode_seconds = time.perf_counter() - started

    history: list[dict[str, Any]] = []
    trained = engine.train(train, dev, on_epoch=history.append)
    dev_best = engine.score(dev, "dev")
    dev_predictions = dev_best.pop("_predictions")
    tested = engine.score(test_data, "test")
    test_predictions = tested.pop("_predictions")
    wall = time.perf_counter() - started

    metrics = {
        "dataset": spec.name,
        "metric": spec.metric,
        "test": tested,
        "dev": dev_best,
        "best_epoch": trained.best_epoch,
        "train_examples": len(train.records),
        "train_windows": len(train.examples),
        "train_seconds": round(trained.train_seconds, 2),
        "train_examples_per_second": round(trained.train_examples_per_second, 2),
        "encode_seconds": round(encode_seconds, 2),
        "wall_seconds": round(wall, 2),
        "precision": str(engine.dtype).replace("torch.", "") if engine.dtype else "fp32",
        "notes": notes,
    }
    for note in notes:
        print(f"blurbkit: note: {spec.name}: {note}", file=sys.stderr)
    if config.out is not None:
        run_info = {
            "config": config.to_json(),
            "resolved": {
                "model_dir": str(model_dir),
                "lr": config.lr or spec.recipe.lr,
                "batch_size": config.batch_size or spec.recipe.batch_size,
                "epochs": config.epochs or spec.recipe.epochs,
                "max_length": recipe.max_length,
                "recipe": recipe.__dict__,
            },
            "versions": library_versions(),
            "blurbkit_commit": blurbkit_commit(),
            "data_sha256": {
                "train": records_sha256(train.records),
                "dev": records_sha256(dev.records),
                "test": records_sha256(test_data.records),
            },
            "notes": notes,
        }
        suffix = PREDICTION_SUFFIX.get(spec.task_type, "jsonl")
        with atomic_dir(config.out) as tmp:
            (tmp / "run.json").write_text(json.dumps(run_info, indent=2) + "\n", encoding="utf-8")
            (tmp / "epochs.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
            write_predictions(spec, list(test_data.records), test_predictions, tmp / "predictions" / f"test.{suffix}")
            write_predictions(spec, list(dev.records), dev_predictions, tmp / "predictions" / f"dev.{suffix}")
            if config.save_model:
                model.to("cpu").save(tmp / "model", tokenizer)
    return metrics
