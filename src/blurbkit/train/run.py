"""One fine-tuning run end to end: data -> model -> train -> test -> run directory.

RUN_DIR/
  run.json        config, library versions, blurbkit commit, sha256 of the data used, notes
  epochs.jsonl    dev metrics after every epoch
  metrics.json    test metrics (+ best dev), wall time, throughput
  predictions/    test (and dev) predictions in `blurbkit evaluate` formats
  model/          the fine-tuned model: AutoModel loads the encoder; Predictor.load the whole

While it trains, RUN_DIR holds only `.checkpoint/` (train/checkpoint.py): the finished directory
replaces RUN_DIR whole, checkpoint included. `resume` continues a killed run from there.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from blurbkit.data.readers.base import ReadOptions
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, check_writable, clean_stale
from blurbkit.models.build import build_model, check_part_options, make_recipe
from blurbkit.models.encoding import Encoded, encode
from blurbkit.models.featurizers import FEATURIZERS
from blurbkit.models.loading import check_max_length, read_config, resolve_model_dir
from blurbkit.models.transforms import lost_entities
from blurbkit.runtime.adversarial import AdversarialConfig
from blurbkit.runtime.capability import torch_threads
from blurbkit.runtime.precision import dtype_name
from blurbkit.scoring import prediction_file_name, score_predictions, write_predictions
from blurbkit.tasks.registry import DatasetSpec, get_dataset
from blurbkit.testhook import kill_point
from blurbkit.train.checkpoint import DIR_NAME, FINAL_DIR_NAME, Checkpoints, RunClock
from blurbkit.train.config import HOW_NOT_WHAT, FinetuneConfig, Hyperparams, without_added_defaults
from blurbkit.train.engine import Engine, TrainResult, seed_everything
from blurbkit.train.heartbeat import Heartbeat, is_progress_entry
from blurbkit.train.provenance import blurbkit_commit, library_versions, records_sha256
from blurbkit.train.splits import Splits, load_splits
from blurbkit.train.stabilise import drop_top_layers, freeze_lower_half, reinit_top_layers


def check_run_dir(out: Path | None, overwrite: bool, resume: bool = False) -> None:
    """Before any work: what is in `out` may be replaced (or continued), and it can be written. What a
    killed earlier run left beside `out` (temporary directories of atomic_dir) is removed first."""
    if out is None:
        return
    clean_stale(out)
    if out.exists() and not out.is_dir():
        raise BlurbkitError("output directory is a file", path=out)
    # A run's progress report (train/heartbeat.py) is no reason to refuse: a run killed before its
    # first checkpoint left nothing else, and starts over.
    entries = [entry.name for entry in out.iterdir() if not is_progress_entry(entry.name)] if out.is_dir() else []
    interrupted = bool(entries) and all(name in (DIR_NAME, FINAL_DIR_NAME) or name.startswith((f".{DIR_NAME}.", f".{FINAL_DIR_NAME}."))
                                        for name in entries)
    if entries and overwrite and not interrupted and not (out / "run.json").exists():
        # --overwrite replaces a run, never a user's folder given by mistake (or `..`)
        raise BlurbkitError("output directory holds other files, not a blurbkit run: --overwrite replaces only a run; "
                            "choose a new --out", path=out)
    if entries and not overwrite and not (interrupted and resume):
        if interrupted:
            raise BlurbkitError("output directory holds an interrupted run; pass --resume to continue it "
                                "or --overwrite to start over", path=out)
        if resume and (out / "run.json").exists():
            raise BlurbkitError("output directory holds a finished run: nothing to resume (--overwrite runs it again)", path=out)
        what = "another run" if (out / "run.json").exists() else "other files"
        raise BlurbkitError(f"output directory holds {what}; choose a new --out or pass --overwrite", path=out)
    check_writable(out, "run directory", folder=True)


def run_signature(config: FinetuneConfig, hyper: Hyperparams, model_dir: Path, data_sha256: dict[str, str]) -> dict[str, Any]:
    """What a checkpoint must share with this run to continue it: config, resolved values, model, data."""
    signature = without_added_defaults({k: v for k, v in config.to_json().items() if k not in HOW_NOT_WHAT})
    if config.model is not None and Path(config.model).exists():  # './m' in one process is '/abs/m' in a driver's worker
        signature["model"] = str(Path(config.model).resolve())
    signature.update(lr=hyper.lr, batch_size=hyper.batch_size, epochs=hyper.epochs, max_length=hyper.max_length,
                     model_dir=str(Path(model_dir).resolve()))
    signature.update({f"data_sha256.{name}": digest for name, digest in data_sha256.items()})
    return json.loads(json.dumps(signature))  # as it reads back from the checkpoint (lists, not tuples)


def lost_entity_notes(engine: Engine, data: dict[str, Encoded], max_length: int) -> list[str]:
    """For a featurizer reading the pair's mentions (mention_pool, entity_start): how many inputs
    lost a mention to truncation, whose feature is then the [CLS] row (models/transforms.py
    MISSING_SPAN). Scored as the protocol truncates, but not hidden."""
    if "entity_pair" not in getattr(engine.model.featurizer, "requires", ()):
        return []
    notes = []
    for name, encoded in data.items():
        lost = sum(1 for example in encoded.examples if lost_entities(example))
        if lost:
            notes.append(f"{name}: {lost} of {len(encoded.examples)} inputs lost a mention past {max_length} subwords; "
                         f"the [CLS] encoding stands in for it")
    return notes


def build_engine(spec: DatasetSpec, config: FinetuneConfig, hyper: Hyperparams, model_dir: Path,
                 train_records: list[dict]) -> Engine:
    """The model of the config's recipe on the pretrained encoder, with the layer options applied."""
    codec = spec.task.codec(spec, train_records, scheme=config.scheme)
    choices = config.choices
    recipe = make_recipe(spec, codec, hyper.max_length, choices.transform, choices.featurizer, choices.head,
                         choices.part_options, train_records)

    def layer_options(encoder: Any) -> None:
        drop_top_layers(encoder, hyper.drop_layers)
        reinit_top_layers(encoder, hyper.reinit_layers)
        if hyper.freeze_lower_half:
            freeze_lower_half(encoder)

    model, tokenizer = build_model(recipe, model_dir, dropout=hyper.dropout, prepare_encoder=layer_options)
    return Engine(model, tokenizer, codec, spec, hyper, config.runtime, seed=config.seed)


def run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune, score on test, and (when config.out is set) write the run directory. torch runs
    on `config.threads` (default: its own count, capped to a container's CPU quota) for the run,
    and on the caller's count again after it."""
    with torch_threads(config.threads):
        return _run_finetune(config)


def run_metrics(spec: DatasetSpec, engine: Engine, train: Encoded, trained: TrainResult, test: dict[str, Any],
                dev: dict[str, Any], encode_seconds: float, clock: RunClock, notes: list[str]) -> dict[str, Any]:
    """metrics.json: the scores, how training went, what it cost and what the run should be read with."""
    import torch

    return {
        "dataset": spec.name,
        "metric": spec.metric,
        "test": test,
        "dev": dev,
        "best_epoch": trained.best_epoch,
        "epochs_run": trained.epochs_run,
        "parameters": sum(p.numel() for p in engine.model.parameters()),
        "trainable_parameters": sum(p.numel() for p in engine.model.parameters() if p.requires_grad),
        "train_examples": len(train.records),
        "train_windows": len(train.examples),
        "train_seconds": round(trained.train_seconds, 2),
        "epoch_train_seconds": trained.epoch_train_seconds,
        "epoch_padded_tokens": trained.epoch_padded_tokens,
        "train_tokens": sum(len(example["input_ids"]) for example in train.examples),  # one epoch, unpadded
        "train_examples_per_second": round(trained.train_examples_per_second, 2),
        "threads": torch.get_num_threads(),  # what the speeds above were measured at (the cost plans scale by it)
        "encode_seconds": round(encode_seconds, 2),
        "wall_seconds": round(clock.seconds(), 2),  # a resumed run's includes its killed processes' (RunClock)
        "resumed": clock.resumed,
        "precision": dtype_name(engine.dtype),
        "notes": notes,
    }


def check_run_options(config: FinetuneConfig) -> DatasetSpec:
    """The run's options that no later step checks, refused in one line before any data is read;
    returns the dataset's spec."""
    if config.checkpoint_every is not None and config.checkpoint_every < 1:
        raise BlurbkitError(f"--checkpoint-every must be at least 1 (got {config.checkpoint_every})")
    if config.adversarial:
        AdversarialConfig(epsilon=config.adv_epsilon, steps=config.adv_steps, step_size=config.adv_step_size,
                          alpha=config.adv_alpha, norm=config.adv_norm)
        featurizer = config.choices.featurizer
        if featurizer and hasattr(FEATURIZERS.get(featurizer), "encoder_inputs"):  # perturbations are shaped by the batch's rows
            raise BlurbkitError(f"--adversarial does not combine with featurizer {featurizer!r} (it re-arranges the encoder's rows)")
    else:  # the CLI refuses these without --adversarial; a Python caller gets the same line, not a silent no-op
        ignored = [f.name for f in fields(Hyperparams) if f.name.startswith("adv_") and getattr(config, f.name) != f.default]
        if ignored:
            raise BlurbkitError(f"{', '.join(ignored)}: only with adversarial=True (--adversarial); without it they would be ignored")
    check_run_dir(config.out, config.overwrite, config.resume)
    spec = get_dataset(config.dataset)
    if config.fold and "folds" not in spec.files:  # else ignored without a word
        raise BlurbkitError(f"--fold {config.fold}: dataset {spec.name} is not split into folds")
    if config.pico_train_from_dev is not None and "pico_train_from_dev" not in ReadOptions().for_reader(spec.reader):
        raise BlurbkitError(f"--pico-train-from-dev: only for EBM PICO, not {spec.name}")
    choices = config.choices
    check_part_options(choices.featurizer or spec.task.featurizer, choices.head or spec.task.head, choices.part_options)
    return spec


def nothing_to_resume(config: FinetuneConfig, notes: list[str]) -> None:
    """`finetune --resume` where --out holds no checkpoint (a typo in the path, or a run killed before
    its first one) trains from the start: said, once every other check passed, and kept in the run's
    notes. A driver's resume (with overwrite) is quiet: most of its runs are new."""
    if not config.resume or config.overwrite or any((config.out / name).is_dir() for name in (DIR_NAME, FINAL_DIR_NAME)):
        return
    where = "does not exist" if not config.out.exists() else "has no checkpoint"
    print(f"blurbkit: --resume: {config.out} {where}; training from the start", file=sys.stderr)
    notes.append(f"--resume found no checkpoint ({config.out} {where}): trained from the start")


def _run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    spec = check_run_options(config)
    hyper = config.hyper.resolved(spec)
    model_dir = resolve_model_dir(config.model)
    check_max_length(read_config(model_dir), hyper.max_length, model_dir,
                     "--max-length" if config.max_length else f"{spec.name}'s max length (set a shorter --max-length)")
    splits = load_splits(spec, config, hyper)
    seed_everything(config.seed)
    engine = build_engine(spec, config, hyper, model_dir, splits.train)

    clock = RunClock()  # the run's wall time, across the processes of a killed and resumed run
    started = clock.started
    data = {name: encode(records, engine.codec, engine.model.recipe, engine.tokenizer, cache=config.encode_cache)
            for name, records in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))}
    encode_seconds = time.perf_counter() - started
    splits.notes += lost_entity_notes(engine, data, hyper.max_length)
    if hasattr(engine.model.featurizer, "notes"):  # a part may have something to say about itself
        splits.notes += engine.model.featurizer.notes()
    data_sha256 = {name: records_sha256(encoded.records) for name, encoded in data.items()}
    checkpoints = heartbeat = None
    if config.out is not None:
        nothing_to_resume(config, splits.notes)
        checkpoints = Checkpoints(config.out / DIR_NAME, run_signature(config, hyper, model_dir, data_sha256),
                                  every=config.checkpoint_every, resume=config.resume, clock=clock,
                                  start_over_if_different=config.resume and config.overwrite)
        heartbeat = Heartbeat(config.out)
    trained = engine.train(data["train"], data["dev"], checkpoints=checkpoints, heartbeat=heartbeat)
    if checkpoints is not None and checkpoints.discarded:
        splits.notes.append(checkpoints.discarded)
    if hyper.last_epoch and trained.best_epoch != trained.epochs_run:
        splits.notes.append(f"scored the last epoch's weights (--last-epoch); dev was best at epoch {trained.best_epoch}")
    dev_best, test = engine.score(data["dev"], "dev"), engine.score(data["test"], "test")
    predictions = {"dev": dev_best.pop("_predictions"), "test": test.pop("_predictions")}
    final = None
    if hyper.final_on_train_dev:
        test_before = test
        engine, data["train_dev"], final = train_on_train_dev(spec, config, hyper, model_dir, splits, engine, trained,
                                                              data_sha256, encode_cache=config.encode_cache, clock=clock)
        test = engine.score(data["test"], "test")
        predictions["test"] = test.pop("_predictions")
        final["test_before"] = {k: v for k, v in test_before.items() if k != "_predictions"}
    mark_failed(spec, splits.train, data["test"].records, test)
    metrics = run_metrics(spec, engine, data["train"], trained, test, dev_best, encode_seconds, clock, splits.notes)
    if final is not None:
        metrics["final_on_train_dev"] = final
    for note in splits.notes:
        print(f"blurbkit: note: {spec.name}: {note}", file=sys.stderr)
    if config.out is not None:
        write_run_dir(config, spec, hyper, model_dir, engine, data, trained.dev_history, metrics, predictions, data_sha256)
    return metrics


def train_on_train_dev(spec: DatasetSpec, config: FinetuneConfig, hyper: Hyperparams, model_dir: Path, splits: Splits,
                       selected: Engine, trained: Any, data_sha256: dict[str, str], encode_cache: Any = None,
                       clock: RunClock | None = None) -> tuple[Engine, Encoded, dict[str, Any]]:
    """The stability paper's final model: once dev has chosen the epoch count, train again from the
    pretrained encoder (same seed, same layer options) on train+dev for that many epochs (with
    `final_steps`: for as many optimizer steps as the chosen model took), on a schedule of its own
    and with no evaluation; test scores that model. Its checkpoint is RUN_DIR/.checkpoint-final."""
    epochs = hyper.epochs if hyper.last_epoch else trained.best_epoch
    records = splits.train + splits.dev
    which = "every epoch of the recipe (--last-epoch)" if hyper.last_epoch else "the best dev epoch"
    seed_everything(config.seed)  # the same fresh start as the first model (re-initialised blocks included)
    final_hyper = replace(hyper, epochs=epochs, patience=None, min_epochs=None)
    engine = build_engine(spec, config, final_hyper, model_dir, records)
    encoded = encode(records, engine.codec, engine.model.recipe, engine.tokenizer, cache=encode_cache)
    steps = None
    if hyper.final_steps:
        # Steps over training examples, not records: a long record is several windows.
        steps = epochs * (trained.steps // trained.epochs_run)
        length = f"{steps} optimizer steps (--final-steps: {epochs} epochs of train, {which})"
        epochs = math.ceil(steps / math.ceil(len(encoded.examples) / hyper.batch_size))  # the last one cut short
        engine.hyper = final_hyper = replace(final_hyper, epochs=epochs)
    else:
        length = f"{epochs} epochs, {which}"
    splits.notes.append(f"final model: retrained on train+dev ({len(splits.train)} + {len(splits.dev)} records) for "
                        f"{length}; test scores that model")
    if config.max_eval_examples is not None:
        splits.notes.append(f"train+dev used the dev subsample of {len(splits.dev)} records")
    checkpoints = heartbeat = None
    if config.out is not None:
        heartbeat = Heartbeat(config.out)  # the second schedule's position, from its own step 0
        signature = run_signature(config, final_hyper, model_dir, data_sha256)
        signature.update(phase="train+dev", selected_epoch=epochs, train_dev_sha256=records_sha256(encoded.records))
        if steps is not None:
            signature["selected_steps"] = steps
        checkpoints = Checkpoints(config.out / FINAL_DIR_NAME, signature, every=config.checkpoint_every, resume=config.resume,
                                  clock=clock or RunClock(), start_over_if_different=config.resume and config.overwrite)
    result = engine.train(encoded, None, checkpoints=checkpoints, heartbeat=heartbeat, max_steps=steps)
    if checkpoints is not None and checkpoints.discarded:
        splits.notes.append(checkpoints.discarded)
    return engine, encoded, {"epochs": epochs, "train_examples": len(records), "steps": result.steps,
                             "train_seconds": round(result.train_seconds, 2)}


def mark_failed(spec: DatasetSpec, train_records: list[dict], test_records: Any, test: dict[str, Any]) -> None:
    """Add the trivial predictor's test score and whether this run failed (no better than it) to `test`
    (tasks/types/base.py `run_failed`, the one definition)."""
    trivial = spec.task.trivial_predictions(spec, train_records, list(test_records))
    test["trivial_score"] = score_predictions(spec, list(test_records), trivial)["score"]
    test["failed"] = spec.task.run_failed(test)


def write_run_dir(config: FinetuneConfig, spec: DatasetSpec, hyper: Hyperparams, model_dir: Path, engine: Engine,
                  data: dict[str, Encoded], history: list[dict[str, Any]], metrics: dict[str, Any],
                  predictions: dict[str, Any], data_sha256: dict[str, str]) -> None:
    """The run directory, written whole under a temporary name and renamed into place (over the
    directory that held the checkpoint)."""
    run_info = {
        "config": config.to_json(),
        "resolved": {
            "model_dir": str(model_dir),
            "lr": hyper.lr,
            "batch_size": hyper.batch_size,
            "epochs": hyper.epochs,
            "max_length": hyper.max_length,
            "recipe": asdict(engine.model.recipe),
        },
        "versions": library_versions(),
        "blurbkit_commit": blurbkit_commit(),
        "data_sha256": data_sha256,
        "notes": metrics["notes"],
    }
    with atomic_dir(config.out) as tmp:
        (tmp / "run.json").write_text(json.dumps(run_info, indent=2) + "\n", encoding="utf-8")
        (tmp / "epochs.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        kill_point("rundir")
        for split in ("test", "dev"):
            records = list(data[split].records)
            write_predictions(spec, records, predictions[split], tmp / "predictions" / prediction_file_name(spec, split))
        if config.save_model:
            engine.model.to("cpu").save(tmp / "model", engine.tokenizer)
