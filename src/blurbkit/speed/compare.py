"""The two sides of a speed comparison, each timed the same way on the same records:
train wall time for the epochs (no evaluation inside), then prediction of dev from
pre-tokenised inputs to predictions in blurbkit's evaluate format, scored by the official metric."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.models.encoding import Encoded, encode
from blurbkit.models.loading import load_tokenizer
from blurbkit.models.model import ModelRecipe
from blurbkit.runtime.allocator import allocator_state
from blurbkit.runtime.precision import dtype_name
from blurbkit.scoring import score_predictions
from blurbkit.speed import hf_recipe
from blurbkit.speed.machine import peak_memory
from blurbkit.tasks.registry import DatasetSpec
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.engine import Engine, seed_everything
from blurbkit.train.run import build_engine as finetune_engine


@dataclass
class Workload:
    spec: DatasetSpec
    model_dir: Path
    train: list[dict]
    dev: list[dict]
    batch_size: int = 32
    lr: float = 5e-5
    epochs: int = 1
    seed: int = 0
    weight_decay: float = 0.01
    progress: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # extra FinetuneConfig fields for blurbkit

    @property
    def task(self) -> str:
        """What the Trainer recipe builds: a token or a sequence classification model."""
        return "token" if "token" in self.spec.task.provides else "sequence"


@dataclass
class SideResult:
    train_seconds: float
    eval_seconds: float
    dev_score: float
    memory: dict[str, Any]
    predictions: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    train_lengths: Sequence[int] = ()  # subwords per train example, for FLOPs
    eval_lengths: Sequence[int] = ()
    # CPU time of the process over the same spans: with one thread, what the side costs whatever
    # else the machine runs (wall time on a loaded machine also measures the scheduler)
    train_cpu_seconds: float | None = None
    eval_cpu_seconds: float | None = None

    def summary(self, work: Workload) -> dict[str, Any]:
        train_n, dev_n = len(work.train) * work.epochs, len(work.dev)
        return {
            "train_examples_per_second": round(train_n / self.train_seconds, 2),
            "eval_examples_per_second": round(dev_n / self.eval_seconds, 2),
            "dev_score": round(self.dev_score, 4),
            "train_seconds": round(self.train_seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "train_cpu_seconds": None if self.train_cpu_seconds is None else round(self.train_cpu_seconds, 2),
            "eval_cpu_seconds": None if self.eval_cpu_seconds is None else round(self.eval_cpu_seconds, 2),
            "peak_memory_mb": self.memory.get("gpu_peak_mb", self.memory.get("peak_mb")),
            "memory_at_start_mb": self.memory.get("start_mb"),  # the process before this side began
            **self.extra,
        }


def run_trainer(work: Workload) -> SideResult:
    """The plain Hugging Face Trainer recipe (fp32, dynamic padding, random batches)."""
    tokenizer = load_tokenizer(work.model_dir)
    labels = list(work.spec.task.codec(work.spec, work.train).labels)
    seed_everything(work.seed)
    allocator = allocator_state()  # this side runs with whatever malloc the process has
    # the Trainer makes its output folder even when it saves nothing: a temporary one, removed after
    with peak_memory() as memory, tempfile.TemporaryDirectory(prefix="blurbkit_hf_") as workdir:
        if work.task == "token":
            train_features, _ = hf_recipe.token_features(work.train, tokenizer, labels)
            dev_features, firsts = hf_recipe.token_features(work.dev, tokenizer, labels)
        else:
            train_features = hf_recipe.sequence_features(work.train, tokenizer, labels, work.spec.max_length)
            dev_features = hf_recipe.sequence_features(work.dev, tokenizer, labels, work.spec.max_length)
            firsts = None
        run = hf_recipe.train(work.model_dir, work.task, train_features, labels, batch_size=work.batch_size,
                              lr=work.lr, epochs=work.epochs, seed=work.seed, weight_decay=work.weight_decay,
                              progress=work.progress, workdir=workdir)
        started, cpu = time.perf_counter(), time.process_time()
        predictions = hf_recipe.predict(run, work.task, work.dev, dev_features, firsts)
        eval_seconds, eval_cpu = time.perf_counter() - started, time.process_time() - cpu
    score = score_predictions(work.spec, work.dev, predictions)["score"]
    return SideResult(run.train_seconds, eval_seconds, score, memory, predictions, {"allocator": allocator},
                      train_cpu_seconds=run.train_cpu_seconds, eval_cpu_seconds=eval_cpu)


def build_engine(work: Workload, config: FinetuneConfig) -> tuple[Engine, ModelRecipe]:
    """The model and engine `blurbkit finetune` builds, with the dataset's default parts."""
    engine = finetune_engine(work.spec, config, config.hyper.resolved(work.spec), work.model_dir, work.train)
    return engine, engine.model.recipe


def run_blurbkit(work: Workload) -> SideResult:
    """blurbkit's engine with its default speed settings (or those in `work.options`)."""
    config = FinetuneConfig(
        dataset=work.spec.name, seed=work.seed, lr=work.lr, batch_size=work.batch_size, epochs=work.epochs,
        weight_decay=work.weight_decay, progress=work.progress, save_model=False, **work.options,
    )
    seed_everything(work.seed)
    with peak_memory() as memory:
        engine, recipe = build_engine(work, config)
        train = encode(work.train, engine.codec, recipe, engine.tokenizer, cache=False)
        dev = encode(work.dev, engine.codec, recipe, engine.tokenizer, cache=False)
        trained = engine.train(train, None)
        started, cpu = time.perf_counter(), time.process_time()
        predictions = engine.predict(dev)
        eval_seconds, eval_cpu = time.perf_counter() - started, time.process_time() - cpu
    score = score_predictions(work.spec, work.dev, predictions)["score"]
    precision = dtype_name(engine.dtype)
    return SideResult(
        trained.train_seconds, eval_seconds, score, memory, predictions, {"precision": precision, "allocator": allocator_state()},
        train_lengths=_lengths(train), eval_lengths=_lengths(dev),
        train_cpu_seconds=trained.train_cpu_seconds, eval_cpu_seconds=eval_cpu,
    )


def _lengths(data: Encoded) -> list[int]:
    return [len(ex["input_ids"]) for ex in data.examples]
