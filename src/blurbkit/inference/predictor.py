"""Use a fine-tuned model on new text: ``Predictor.load(run_dir / "model").predict([...])``.

A model directory describes itself (blurbkit.json: task type, labels, tagging scheme, parts,
maximum length), so a Predictor needs neither the training code nor the dataset registered here.
Token-level models (NER, PICO) take raw sentences, split into words the way the BLURB NER corpora
are (runs of letters/digits, single punctuation marks, combining accents kept on their letter;
tasks/types/token.py), and return entity spans with character offsets. Sequence models take the fields of their task's canonical record
(text; text_a/text_b; question/context) or plain strings for single-text tasks.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from blurbkit.arguments import items_of
from blurbkit.errors import BlurbkitError
from blurbkit.inference.runner import InferenceRunner
from blurbkit.models.encoding import Encoded, encode
from blurbkit.models.model import RECIPE_FILE, BlurbModel
from blurbkit.models.transforms import TRANSFORMS, RecordError, lost_entities
from blurbkit.runtime.capability import capped_threads
from blurbkit.runtime.settings import RuntimeSettings
from blurbkit.tasks.types import get_task_type
from blurbkit.tasks.types.base import InputError


def runtime_settings(settings: dict[str, Any] | None, **given: Any) -> RuntimeSettings:
    if settings is not None and not isinstance(settings, dict):
        raise BlurbkitError(f"settings must be a dict of runtime setting: value (e.g. {{'precision': 'fp32'}}), not {settings!r}")
    known = {f.name for f in fields(RuntimeSettings)}
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise BlurbkitError(f"unknown runtime setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return RuntimeSettings(**({k: v for k, v in given.items() if v is not None} | (settings or {})))


class Predictor:
    """A fine-tuned model directory (what `finetune` writes under OUT/model) run on new inputs:
    `Predictor.load(dir).predict(texts)` gives one result per input in the task's own form
    (entity spans with character offsets for NER and PICO, a label for relations and documents,
    labels for HoC, a number for sentence similarity, an answer for question answering)."""

    def __init__(self, model: BlurbModel, tokenizer: Any, batch_tokens: int | None = None, progress: bool = False,
                 settings: dict[str, Any] | None = None, backend: Any = None) -> None:
        """settings: runtime settings for inference (e.g. {"precision": "fp32"},
        {"tune_allocator": False}; runtime/settings.py, docs/performance.md). backend: another
        forward pass for the model (see `load`)."""
        self.recipe = model.recipe
        self.task = get_task_type(self.recipe.task_type)
        self.codec = self.task.saved_codec(self.recipe.labels, self.recipe.scheme)
        self.runner = InferenceRunner(model, tokenizer, runtime_settings(settings, eval_tokens=batch_tokens, progress=progress),
                                      backend=backend)
        self.backend = "torch" if backend is None else getattr(backend, "name", type(backend).__name__)

    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "torch", batch_tokens: int | None = None,
             progress: bool = False, settings: dict[str, Any] | None = None) -> Predictor:
        """The Predictor of `model_dir`, a fine-tuned model directory (safetensors weights, the
        tokenizer and blurbkit.json; nothing else is read, nothing is downloaded).
        backend: "torch" (the exact model, default), "onnx" (ONNX Runtime, fp32) or "onnx-int8"
        (int8 dynamic quantisation: faster, outputs change a little); the ONNX ones need
        `blurbkit export --model DIR --format onnx [--int8]` first (inference/onnx.py)."""
        if not isinstance(model_dir, str | Path):
            raise BlurbkitError(f"model_dir must be a model directory path, not {model_dir!r}")
        options = {"batch_tokens": batch_tokens, "progress": progress, "settings": settings}
        model, tokenizer = BlurbModel.load(model_dir)
        try:  # the recipe's task type, labels and scheme, before anything runs
            get_task_type(model.recipe.task_type).saved_codec(model.recipe.labels, model.recipe.scheme)
        except BlurbkitError as err:
            raise BlurbkitError(str(err), path=Path(model_dir) / RECIPE_FILE) from None
        forward = None
        if backend != "torch":
            from blurbkit.inference.onnx import load_backend

            # The session is made now, before the runner sets torch's threads: give it the same count.
            threads = (settings or {}).get("threads") or capped_threads()
            forward = load_backend(model_dir, backend, model, threads=threads)
        return cls(model, tokenizer, backend=forward, **options)

    def predict(self, inputs: Sequence[str | dict[str, Any]]) -> list[Any]:
        """One result per input: entity spans for token-level models, else a label, score or label list.

        An entity-pair input whose pair max_length cuts off gets None and an `InputWarning` (the
        model would see neither mention, or only one: its label would mean nothing)."""
        inputs = items_of(inputs)  # one string is not a list of one-letter texts
        if not inputs:  # nothing to encode: a tokenizer given no text at all fails instead of answering []
            return []
        if "token" not in self.task.provides:  # a tagger finds nothing in nothing; a classifier still answers
            for index, item in enumerate(inputs):
                if _no_text(item):
                    warnings.warn(InputWarning(index, "no text: its prediction is the model's prior, not about any text"),
                                  stacklevel=2)
        records = records_for(self.task, inputs, TRANSFORMS.get(self.recipe.transform))
        data = self.encode(records)
        data, lost = without_lost_pairs(data, self.recipe.max_length)
        for index, problem in lost.items():
            warnings.warn(InputWarning(index, problem), stacklevel=2)
        predictions = self.codec.collect(data.records, data.examples, self.runner.outputs(data))
        return self.task.results(inputs, records, predictions)

    def encode(self, records: Sequence[dict[str, Any]]) -> Encoded:
        """The model's encoder inputs for records made from inputs (a record the transform refuses
        is named by its input position)."""
        try:
            return encode(records, self.codec, self.recipe, self.runner.tokenizer, labelled=False)
        except RecordError as err:
            raise InputError(err.index, err.problem) from None


class InputWarning(UserWarning):
    """One `Predictor` input got no prediction, or one about no text; `index` says which (the CLI
    names the input's line)."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"input {index}: {problem}")
        self.index, self.problem = index, problem


def _no_text(item: Any) -> bool:
    """A string, or an object's text fields, with nothing but white space."""
    texts = [item] if isinstance(item, str) else (
        [value for key, value in item.items() if key != "id" and isinstance(value, str)] if isinstance(item, dict) else [])
    return bool(texts) and not any(text.strip() for text in texts)


def without_lost_pairs(data: Encoded, max_length: int) -> tuple[Encoded, dict[int, str]]:
    """`data` without the examples one or both of whose entities lie wholly past max_length, and
    why each such record is left out (by record index). Inference only: evaluation keeps them, as
    the official protocol truncates (and scores) every pair."""
    lost: dict[int, str] = {}
    for example in data.examples:
        missing = lost_entities(example)
        if missing:
            which = "both entities lie" if len(missing) > 1 else f"entity {missing[0]} lies"
            lost[example["record_index"]] = f"the pair is not predicted: {which} past the model's max_length ({max_length} tokens)"
    if not lost:
        return data, lost
    kept = [example for example in data.examples if example["record_index"] not in lost]
    return Encoded(data.records, kept), lost


def records_for(task: Any, inputs: Sequence[Any], transform: Any) -> list[dict[str, Any]]:
    """The task type's records of `inputs`, told the model's transform when it takes one (a task
    type registered outside blurbkit may still override `records_from_inputs(inputs)` alone)."""
    parameters = inspect.signature(task.records_from_inputs).parameters
    if "transform" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return task.records_from_inputs(inputs, transform=transform)
    return task.records_from_inputs(inputs)
