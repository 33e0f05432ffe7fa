"""`blurbkit bench speed`: the Hugging Face Trainer recipe and blurbkit's engine on the same
work, in one process and one run, reported as one JSON object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from blurbkit.data.load import load_split, subsample
from blurbkit.models.flops import split_flops
from blurbkit.models.loading import read_config, resolve_model_dir
from blurbkit.speed.compare import SideResult, Workload, run_blurbkit, run_trainer
from blurbkit.speed.machine import machine_info, measure_peaks, peak_of, release_memory, same_threads
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.provenance import library_versions


def utilisation(config: Any, lengths: Sequence[int], num_labels: int, seconds: float, peak: float | None, training: bool,
                repeats: int = 1) -> float | None:
    """Model FLOPs per second over `peak` GFLOP/s (a fraction); None when that peak was not measured."""
    if not peak:
        return None
    flops = split_flops(config, lengths, num_labels, training=training) * repeats
    return round(flops / seconds / (peak * 1e9), 4)


def speed(dataset: str = "bc5chem", model: str | None = None, data: str | None = None, train_examples: int | None = 2000,
          eval_examples: int | None = 1000, epochs: int = 1, batch_size: int = 32, lr: float = 5e-5, seed: int = 0,
          progress: bool = False, engine_options: dict[str, Any] | None = None, trainer: bool = True,
          peak_seconds: float = 1.0, peak_size: int = 2048) -> dict[str, Any]:
    from transformers import AutoConfig

    spec = get_dataset(dataset)
    model_dir = resolve_model_dir(model)
    read_config(model_dir)
    threads = (engine_options or {}).get("threads")
    same_threads(int(threads) if threads is not None else None)
    work = Workload(
        spec=spec, model_dir=model_dir, batch_size=batch_size, lr=lr, epochs=epochs, seed=seed, progress=progress,
        train=subsample(load_split(dataset, "train", data), train_examples, seed),
        dev=subsample(load_split(dataset, "dev", data), eval_examples, seed),
        options=dict(engine_options or {}),
    )
    result: dict[str, Any] = {
        "bench": "speed", "dataset": dataset, "task": work.task, "model": "default (MiniLM-L6-H384)" if model is None else str(model),
        "train_examples": len(work.train), "eval_examples": len(work.dev), "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "metric": spec.metric, "engine_options": work.options,
        "machine": machine_info(),
    }
    result["peak_gflops"], skipped = measure_peaks(peak_seconds, peak_size)
    if skipped:
        result["peak_skipped"] = skipped  # dtype -> why it was not timed (not native, or overridden)
    hf: SideResult | None = run_trainer(work) if trainer else None
    hf_threads = torch.get_num_threads()
    release_memory()
    ours = run_blurbkit(work)
    config = AutoConfig.from_pretrained(str(model_dir))
    labels = len(spec.labels) or 3
    # MFU of each side against the peak of the dtype that side ran in (the Trainer recipe: fp32).
    ours_dtype, peak = peak_of(result["peak_gflops"], ours.extra["precision"])
    result["blurbkit"] = ours.summary(work) | {
        "train_mfu": utilisation(config, ours.train_lengths, labels, ours.train_seconds, peak, True, epochs),
        "eval_mfu": utilisation(config, ours.eval_lengths, labels, ours.eval_seconds, peak, False),
        "mfu_peak": ours_dtype, "torch_threads": torch.get_num_threads(),
    }
    if hf is not None:
        hf_dtype, hf_peak = peak_of(result["peak_gflops"], "fp32")
        result["trainer"] = hf.summary(work) | {
            "precision": "fp32", "torch_threads": hf_threads,
            "train_mfu": utilisation(config, ours.train_lengths, labels, hf.train_seconds, hf_peak, True, epochs),
            "mfu_peak": hf_dtype,
        }
        result["train_speedup"] = round(result["blurbkit"]["train_examples_per_second"] / result["trainer"]["train_examples_per_second"], 2)
        result["eval_speedup"] = round(result["blurbkit"]["eval_examples_per_second"] / result["trainer"]["eval_examples_per_second"], 2)
        result["dev_score_difference"] = round(ours.dev_score - hf.dev_score, 4)
        if hf.train_cpu_seconds and ours.train_cpu_seconds and hf.eval_cpu_seconds and ours.eval_cpu_seconds:
            # per example; the same ratio as wall time on an idle machine with one thread
            result["train_cpu_speedup"] = round(hf.train_cpu_seconds / ours.train_cpu_seconds, 2)
            result["eval_cpu_speedup"] = round(hf.eval_cpu_seconds / ours.eval_cpu_seconds, 2)
    result["machine"]["load_average_end"] = machine_info()["load_average"]
    result["versions"] = {k: v for k, v in library_versions().items() if k in ("torch", "transformers", "accelerate", "blurbkit")}
    return result
