"""`blurbkit bench inference`: entities in raw sentences, blurbkit's Predictor against
`transformers.pipeline("token-classification")` with the same fine-tuned weights.

Both run end to end, raw text in, tagged words out (their own tokenisation included), after a
short warm-up. Tags are compared word by word (words as blurbkit's Predictor splits them; a word's
tag is its first subword's, as both sides decode), after the same IOB2 normalisation.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.data.load import load_split, subsample
from blurbkit.errors import BlurbkitError
from blurbkit.inference.predictor import Predictor
from blurbkit.models.encoding import encode
from blurbkit.models.flops import split_flops
from blurbkit.models.loading import resolve_model_dir
from blurbkit.models.model import BlurbModel
from blurbkit.runtime.allocator import allocator_state
from blurbkit.runtime.precision import dtype_name
from blurbkit.speed.compare import Workload, build_engine
from blurbkit.speed.machine import (
    machine_info,
    measure_peaks,
    peak_memory,
    peak_of,
    release_memory,
    same_threads,
)
from blurbkit.tagging import tags_to_spans
from blurbkit.tasks.registry import get_dataset
from blurbkit.tasks.types.token import split_words
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.engine import seed_everything
from blurbkit.train.provenance import library_versions

WARMUP = 16


def finetune_quickly(dataset: str, model: str | None, data: str | None, examples: int, seed: int, out: Path) -> Path:
    """One blurbkit epoch on a train subsample, saved where Predictor.load finds it."""
    spec = get_dataset(dataset)
    work = Workload(spec=spec, model_dir=resolve_model_dir(model), dev=[],
                    train=subsample(load_split(dataset, "train", data), examples, seed))
    # tune_allocator off: the pipeline, timed next, must run on the process's default malloc.
    config = FinetuneConfig(dataset=dataset, seed=seed, epochs=1, batch_size=32, lr=5e-5, progress=False, tune_allocator=False)
    seed_everything(seed)
    engine, recipe = build_engine(work, config)
    engine.train(encode(work.train, engine.codec, recipe, engine.tokenizer), None)
    engine.model.to("cpu").save(out, engine.tokenizer)
    return out


def as_hf_token_model(model: BlurbModel) -> Any:
    """The same weights as an AutoModelForTokenClassification (encoder + the linear softmax head)."""
    from transformers import AutoModelForTokenClassification

    recipe = model.recipe
    if recipe.featurizer != "first_subword" or recipe.head != "softmax":
        raise BlurbkitError("the pipeline comparison needs a first_subword featurizer and a softmax head")
    config = model.encoder.config
    config.num_labels = len(recipe.labels)
    config.id2label = dict(enumerate(recipe.labels))
    config.label2id = {label: i for i, label in enumerate(recipe.labels)}
    hf = AutoModelForTokenClassification.from_config(config)
    hf.base_model.load_state_dict(model.encoder.state_dict(), strict=False)
    hf.classifier.load_state_dict(model.head.linear.state_dict())
    return hf.eval()


def _with_export(model_dir: Path, export_dir: Path, into: Path) -> Path:
    """A copy of the model directory with the export where Predictor.load(backend=...) looks."""
    import shutil

    from blurbkit.inference.onnx import EXPORT_DIR

    shutil.copytree(model_dir, into, ignore=shutil.ignore_patterns(EXPORT_DIR))
    shutil.move(str(export_dir), str(into / EXPORT_DIR))
    return into


def canonical(tags: Sequence[str]) -> list[str]:
    """IOB2 as tags_to_spans reads it (an I- after O starts an entity)."""
    out = ["O"] * len(tags)
    for start, end, kind in tags_to_spans(tags):
        out[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return out


def pipeline_word_tags(text: str, entities: list[dict]) -> list[str]:
    by_start = {entity["start"]: entity["entity"] for entity in entities}
    return canonical([by_start.get(start, "O") for _, start, _ in split_words(text)])


def blurbkit_word_tags(text: str, entities: list[dict]) -> list[str]:
    words = split_words(text)
    index = {start: n for n, (_, start, _) in enumerate(words)}
    tags = ["O"] * len(words)
    for entity in entities:
        first = index[entity["start"]]
        inside = [n for n, (_, s, e) in enumerate(words) if s >= entity["start"] and e <= entity["end"]]
        for n in inside:
            tags[n] = ("B-" if n == first else "I-") + entity["type"]
    return tags


def inference(dataset: str = "bc5chem", model: str | None = None, data: str | None = None, sentences: int = 1000,
              finetuned: str | None = None, train_examples: int = 1000, seed: int = 0, progress: bool = False,
              pipeline_batch_size: int | None = None, peak_seconds: float = 1.0, peak_size: int = 2048,
              backend: str = "torch", settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """backend: blurbkit's forward pass ("torch", or "onnx"/"onnx-int8": the model is exported to
    ONNX first, into a copy when `finetuned` is given, so the user's directory is not written).
    settings: RuntimeSettings fields for blurbkit's side (e.g. bf16_inference=False); a thread count
    in them is set for both sides, before either runs."""
    import torch
    from transformers import pipeline

    spec = get_dataset(dataset)
    if "token" not in spec.task.provides:
        raise BlurbkitError(f"bench inference is for NER/PICO datasets, not {dataset} ({spec.task_type})")
    texts = [" ".join(r["tokens"]) for r in subsample(load_split(dataset, "dev", data), sentences, seed)]
    given = dict(settings or {})
    settings = given | {"threads": same_threads(given.get("threads"))}
    load_at_start = machine_info()["load_average"]
    peaks, skipped = measure_peaks(peak_seconds, peak_size)
    with tempfile.TemporaryDirectory(prefix="blurbkit_bench_") as tmp:
        model_dir = Path(finetuned) if finetuned else finetune_quickly(dataset, model, data, train_examples, seed, Path(tmp) / "m")
        if backend != "torch":
            from blurbkit.inference.onnx import export

            export(model_dir, out=Path(tmp) / "onnx_export", int8=backend == "onnx-int8")
            model_dir = _with_export(model_dir, Path(tmp) / "onnx_export", Path(tmp) / "exported")
        predictor = Predictor.load(model_dir, progress=progress, backend=backend, settings=settings)
    release_memory()
    hf_model = as_hf_token_model(predictor.runner.model)
    device = 0 if torch.cuda.is_available() else -1
    pipe = pipeline("token-classification", model=hf_model, tokenizer=predictor.runner.tokenizer, device=device)
    options = {} if pipeline_batch_size is None else {"batch_size": pipeline_batch_size}

    pipe(texts[:WARMUP], **options)
    pipeline_allocator = allocator_state()
    with peak_memory() as hf_memory:
        started, cpu = time.perf_counter(), time.process_time()
        hf_out = pipe(texts, **options)
        hf_seconds, hf_cpu = time.perf_counter() - started, time.process_time() - cpu
    predictor.predict(texts[:WARMUP])
    with peak_memory() as our_memory:
        started, cpu = time.perf_counter(), time.process_time()
        our_out = predictor.predict(texts)
        our_seconds, our_cpu = time.perf_counter() - started, time.process_time() - cpu

    theirs = [pipeline_word_tags(t, e) for t, e in zip(texts, hf_out, strict=True)]
    ours = [blurbkit_word_tags(t, e) for t, e in zip(texts, our_out, strict=True)]
    pairs = [(a, b) for x, y in zip(ours, theirs, strict=True) for a, b in zip(x, y, strict=True)]
    tokenizer = predictor.runner.tokenizer
    lengths = [len(ids) + 2 for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    flops = split_flops(predictor.runner.model.encoder.config, lengths, len(predictor.recipe.labels))
    precision = dtype_name(predictor.runner.dtype) if backend == "torch" else {"onnx": "fp32", "onnx-int8": "int8"}[backend]
    # MFU against the peak of the dtype blurbkit ran in (none measured for int8)
    ours_dtype, peak = peak_of(peaks, precision) if precision != "int8" else (None, None)
    machine = machine_info()
    machine["load_average"] = load_at_start
    machine["load_average_end"] = machine_info()["load_average"]
    return {
        "bench": "inference", "dataset": dataset, "sentences": len(texts), "model": str(model_dir if finetuned else "fine-tuned now"),
        "machine": machine, "peak_gflops": peaks, **({"peak_skipped": skipped} if skipped else {}),
        "pipeline": {"sentences_per_second": round(len(texts) / hf_seconds, 2), "seconds": round(hf_seconds, 2),
                     "cpu_seconds": round(hf_cpu, 2),
                     "batch_size": pipeline_batch_size or 1, "precision": "fp32", "allocator": pipeline_allocator,
                     "peak_memory_mb": hf_memory.get("gpu_peak_mb", hf_memory.get("peak_mb"))},
        "blurbkit": {"sentences_per_second": round(len(texts) / our_seconds, 2), "seconds": round(our_seconds, 2),
                     "cpu_seconds": round(our_cpu, 2),
                     "precision": precision, "backend": backend, "mfu": round(flops / our_seconds / (peak * 1e9), 4) if peak else None,
                     "mfu_peak": ours_dtype, "allocator": allocator_state(),
                     "peak_memory_mb": our_memory.get("gpu_peak_mb", our_memory.get("peak_mb"))},
        "engine_options": given,
        "speedup": round(hf_seconds / our_seconds, 2),
        "cpu_speedup": round(hf_cpu / our_cpu, 2),  # CPU time of the process: with one thread, load-independent
        "identical_tags": round(sum(a == b for a, b in pairs) / max(1, len(pairs)), 4),
        "identical_sentences": round(sum(x == y for x, y in zip(ours, theirs, strict=True)) / max(1, len(texts)), 4),
        "entity_words": sum(a != "O" for a, _ in pairs),
        "versions": {k: v for k, v in library_versions().items() if k in ("torch", "transformers", "blurbkit")},
    }
