"""Use a fine-tuned model on new text: ``Predictor.load(run_dir / "model").predict([...])``.

A model directory describes itself (blurbkit.json: task type, labels, tagging scheme, parts,
maximum length), so a Predictor needs neither the training code nor the dataset registered here.
Token-level models (NER, PICO) take raw sentences, split into words the way the BLURB NER corpora
are (runs of letters/digits, single punctuation marks; tasks/types/token.py), and return entity
spans with character offsets. Sequence models take the fields of their task's canonical record
(text; text_a/text_b; question/context) or plain strings for single-text tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.inference.runner import InferenceRunner
from blurbkit.models.encoding import encode
from blurbkit.models.model import RECIPE_FILE, BlurbModel
from blurbkit.runtime.capability import cap_torch_threads
from blurbkit.runtime.settings import RuntimeSettings
from blurbkit.tasks.types import get_task_type


def runtime_settings(settings: dict[str, Any] | None, **given: Any) -> RuntimeSettings:
    known = {f.name for f in fields(RuntimeSettings)}
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise BlurbkitError(f"unknown runtime setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return RuntimeSettings(**({k: v for k, v in given.items() if v is not None} | (settings or {})))


class Predictor:
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
    def load(cls, model_dir: str | Path, backend: str = "torch", **options: Any) -> Predictor:
        """backend: "torch" (the exact model, default), "onnx" (ONNX Runtime, fp32) or "onnx-int8"
        (int8 dynamic quantisation: faster, outputs change a little); the ONNX ones need
        `blurbkit export --model DIR --format onnx [--int8]` first (inference/onnx.py)."""
        model, tokenizer = BlurbModel.load(model_dir)
        try:  # the recipe's task type, labels and scheme, before anything runs
            get_task_type(model.recipe.task_type).saved_codec(model.recipe.labels, model.recipe.scheme)
        except BlurbkitError as err:
            raise BlurbkitError(str(err), path=Path(model_dir) / RECIPE_FILE) from None
        forward = None
        if backend != "torch":
            from blurbkit.inference.onnx import load_backend

            # The session is made now, before the runner sets torch's threads: give it the same count.
            threads = (options.get("settings") or {}).get("threads") or cap_torch_threads()
            forward = load_backend(model_dir, backend, model, threads=threads)
        return cls(model, tokenizer, backend=forward, **options)

    def predict(self, inputs: Sequence[str | dict[str, Any]]) -> list[Any]:
        """One result per input: entity spans for token-level models, else a label, score or label list."""
        records = self.task.records_from_inputs(inputs)
        data = encode(records, self.codec, self.recipe, self.runner.tokenizer, labelled=False)
        predictions = self.codec.collect(data.records, data.examples, self.runner.outputs(data))
        return self.task.results(inputs, records, predictions)
