"""The fine-tuning cost table (BioM-Transformers, Table 3 setting: ChemProt, 3 epochs, batch 32,
max length 128): per model, the time per epoch, tokens/s, parameters and peak memory on this
machine, measured by a real fine-tuning run of the engine (train.run), never estimated.

With ``max_train_examples`` the run trains on a seeded slice and the epoch time is extrapolated
to the whole train split from the measured seconds per example (the table says so). Evaluation
runs on small dev/test subsamples and is not part of the timed training.

Every measurement is also a row of the results store (experiments/cost_store.py), for `blurbkit report`.

Not `experiments/cost.py`: that one estimates what a sweep would cost before it runs (--plan);
this one measures. It reuses cost.py's `split_sizes` for the size of the whole train split.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.experiments.cost import split_sizes
from blurbkit.experiments.cost_report import (  # noqa: F401 (the cost command's tables, re-exported)
    PUBLISHED,
    cost_figure,
    cost_table,
    duration,
    plot_cost,
    write_cost_report,
)
from blurbkit.experiments.cost_store import MACHINE_KEYS, PAPER_SETTING, STUDY  # noqa: F401 (part of this module's interface)
from blurbkit.models.build import make_recipe
from blurbkit.models.encoding import encode
from blurbkit.models.loading import load_tokenizer, resolve_model_dir, store_label
from blurbkit.models.tiny import RANDOM_PRESETS, is_random, random_preset_dir
from blurbkit.paths import cache_root
from blurbkit.speed.machine import peak_memory, release_memory
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.run import run_finetune
from blurbkit.train.splits import load_splits

EVAL_EXAMPLES = 32  # dev and test subsamples: the run must score something, the table times training only
DEFAULT_ALIASES = ("minilm", "default")



@dataclass(frozen=True)
class CostModel:
    name: str  # as given on the command line
    label: str  # for the table
    model: str | None  # what FinetuneConfig.model takes (None = the embedded default)
    weights: str  # "pretrained" or "random (timing only)"


def resolve_cost_models(names: str) -> list[CostModel]:
    """'minilm,bert-base-random,/path/to/dir' -> the models, a random preset written once under the cache."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise BlurbkitError("--models names no model")
    for name in wanted:  # every name checked before a random encoder is written or anything trains
        if name.lower() not in DEFAULT_ALIASES and name not in RANDOM_PRESETS:
            resolve_model_dir(name)
    out = []
    for name in wanted:
        if name.lower() in DEFAULT_ALIASES:
            out.append(CostModel(name, "MiniLM-L6-H384 (default)", None, "pretrained"))
        elif name in RANDOM_PRESETS:
            hidden, layers, _, _ = RANDOM_PRESETS[name]
            print(f"blurbkit: {name}: a randomly initialised {layers}-layer, {hidden}-wide BERT (timing only)", file=sys.stderr)
            directory = random_preset_dir(name, cache_root() / "models")
            out.append(CostModel(name, f"{name} ({layers}x{hidden})", str(directory), "random (timing only)"))
        else:
            directory = resolve_model_dir(name)
            weights = "random (timing only)" if is_random(directory) else "as given"
            out.append(CostModel(name, directory.name, str(directory), weights))
    return out


def measure(model: CostModel, dataset: str, data: str | None, max_train_examples: int | None, epochs: int,
            progress: bool = False) -> dict[str, Any]:
    """One fine-tuning run in the paper's setting; its timing, throughput, size and peak memory."""
    spec = get_dataset(dataset)
    config = FinetuneConfig(dataset=spec.name, data=data, model=model.model, batch_size=PAPER_SETTING["batch_size"],
                            max_length=PAPER_SETTING["max_length"], epochs=epochs, max_train_examples=max_train_examples,
                            max_eval_examples=EVAL_EXAMPLES, max_test_examples=EVAL_EXAMPLES, save_model=False,
                            progress=progress)
    release_memory()
    with peak_memory() as memory:
        metrics = run_finetune(config)
    trained = metrics["train_examples"]
    full = split_sizes(config.replace(max_train_examples=None))["train"]
    seconds_per_example = metrics["train_seconds"] / max(trained * metrics["epochs_run"], 1)
    tokens = train_tokens(config)
    epoch_seconds = full * seconds_per_example
    return {
        "model": model.label,
        "weights": model.weights,
        "parameters": metrics["parameters"],
        "train_examples_timed": trained,
        "epochs_timed": metrics["epochs_run"],
        "train_split": full,
        "extrapolated": trained < full,
        "timed_seconds": metrics["train_seconds"],
        "epoch_seconds": epoch_seconds,
        "three_epoch_seconds": PAPER_SETTING["epochs"] * epoch_seconds,
        "examples_per_second": metrics["train_examples_per_second"],
        "tokens_per_second": tokens * metrics["epochs_run"] / max(metrics["train_seconds"], 1e-9),
        "tokens_per_example": tokens / max(trained, 1),
        "peak_memory_mb": memory.get("gpu_peak_mb") or memory.get("peak_mb"),
        "memory_at_start_mb": memory.get("start_mb"),
        "precision": metrics["precision"],
    }


def train_tokens(config: FinetuneConfig) -> int:
    """Subword tokens (no padding) of the records the run trained on: the same seeded slice, tokenised
    as the run did (the encode cache makes this a read)."""
    spec = get_dataset(config.dataset)
    hyper = config.hyper.resolved(spec)
    splits = load_splits(spec, config, hyper)
    directory = resolve_model_dir(config.model)
    codec = spec.task.codec(spec, splits.train)
    recipe = make_recipe(spec, codec, hyper.max_length, train_records=splits.train)
    encoded = encode(splits.train, codec, recipe, load_tokenizer(directory), cache=True)
    return sum(len(example["input_ids"]) for example in encoded.examples)


def store_label_of(model: CostModel) -> str:
    """The results store's name for a measured model: the benchmark's, else (random presets) the table's."""
    if model.model is None:
        return store_label(None)
    return model.label if model.weights.startswith("random") else store_label(model.model)
