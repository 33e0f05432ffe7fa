"""`blurbkit probe` end to end: data and encoder -> cached layer features -> a probe per depth and
seed -> the table (md, csv), the results (json) and the plot (png) in one output directory.

OUT/
  probe.md / probe.csv / probe.png / probe.json   per-depth scores, Delta_l, alphas of the full-depth probe
  features.safetensors (+ .json key)             the frozen encoder's per-layer features, reused by re-runs
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from blurbkit.analysis.probe_results import probe_budget, probe_figure, store_probes
from blurbkit.analysis.probing import (
    SPLITS,
    ProbeSettings,
    ProbeTask,
    check_probe_dataset,
    feature_key,
    layer_features,
    load_cached,
    parameter_digest,
    results_json,
    run_probes,
    save_cached,
    summarise,
)
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write, check_writable, write_csv
from blurbkit.models.build import make_recipe
from blurbkit.models.encoding import encode
from blurbkit.models.loading import (
    check_vocab_matches,
    load_encoder,
    load_tokenizer,
    read_config,
    resolve_model_dir,
    store_label,
)
from blurbkit.runtime.capability import capability
from blurbkit.runtime.precision import autocast_dtype, dtype_name, pick_device
from blurbkit.store.results import check_store
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.splits import load_splits

FEATURES = "features.safetensors"


def hardware() -> str:
    cap = capability()
    return f"{cap.cpu.model}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch thread(s)"


def frozen_features(path: Path, key: str, model_dir: Path, data_by_split: dict[str, Any], pad_id: int, dtype: Any,
                    desc: str, progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every layer's features of every split, from the cache at `path` when its key matches, else
    computed from the frozen encoder (checked unchanged afterwards) and cached; and how they came."""
    features = load_cached(path, key)
    if features is not None:
        return features, {"features": "cached"}
    encoder = load_encoder(model_dir)
    before = parameter_digest(encoder)
    bar = tqdm(total=sum(len(d.examples) for d in data_by_split.values()), desc=desc, unit="ex", disable=not progress)
    features = {split: layer_features(encoder, data, pad_id, dtype, progress=bar.update) for split, data in data_by_split.items()}
    bar.close()
    if parameter_digest(encoder) != before:  # the invariant the study rests on; never expected
        raise BlurbkitError("probe: the encoder's parameters changed while computing features")
    save_cached(path, key, features)
    return features, {"features": "computed", "encoder_sha256": before, "encoder_unchanged": True}


def probe_study(dataset: str, out: Path, model: str | None = None, data: str | None = None,
                settings: ProbeSettings | None = None, max_train_examples: int | None = None,
                max_eval_examples: int | None = None, max_test_examples: int | None = None,
                max_length: int | None = None, precision: str = "auto", progress: bool = True,
                store: str | Path | None = None) -> dict[str, Any]:
    """Probe every depth; write OUT's files and, with `store`, one row per probe into that results store."""
    settings = settings or ProbeSettings()
    spec = get_dataset(dataset)
    check_probe_dataset(spec)  # before the model or any data is read
    model_dir = resolve_model_dir(model)
    read_config(model_dir)
    check_writable(out, "probe output directory", folder=True)
    if store is not None:
        check_store(store)  # a store that cannot take the rows fails now, not after the probes
    config = FinetuneConfig(dataset=spec.name, data=data, model=model, max_train_examples=max_train_examples,
                            max_eval_examples=max_eval_examples, max_test_examples=max_test_examples,
                            max_length=max_length)
    hyper = config.hyper.resolved(spec)
    splits = load_splits(spec, config, hyper)
    if not splits.dev:
        raise BlurbkitError(f"probe: each probe's epoch is chosen on dev, and dataset {spec.name} has no dev split here")
    tokenizer = load_tokenizer(model_dir)
    check_vocab_matches(tokenizer, read_config(model_dir), model_dir)
    codec = spec.task.codec(spec, splits.train)
    recipe = make_recipe(spec, codec, hyper.max_length, train_records=splits.train)
    records = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    data_by_split = {split: encode(records[split], codec, recipe, tokenizer, cache=True) for split in SPLITS}

    dtype = autocast_dtype(precision, pick_device())
    key = feature_key(model_dir, spec, hyper.max_length, dtype_name(dtype), records)
    started = time.perf_counter()
    features, encoder_info = frozen_features(out / FEATURES, key, model_dir, data_by_split, tokenizer.pad_token_id,
                                             dtype, f"{spec.name} layer features", progress)
    feature_seconds = time.perf_counter() - started
    layers = next(iter(features["train"].values())).size(1) - 1

    task = ProbeTask(spec, codec, recipe.head, data_by_split, {split: features[split][settings.pool] for split in SPLITS})
    runs = (layers + 1) * settings.seeds
    bar = tqdm(total=runs, desc=f"{spec.name} probes", unit="probe", disable=not progress)
    started = time.perf_counter()
    results = run_probes(task, layers, settings, progress=lambda _: bar.update(1))
    bar.close()
    probe_seconds = time.perf_counter() - started
    rows = summarise(results)
    info = {
        "dataset": spec.name,
        "metric": spec.metric,
        "model": model_label(model),
        "model_dir": model_dir.name,
        "store_model": store_label(None if model in (None, "default") else model),
        "budget": probe_budget({"max_train_examples": max_train_examples, "max_eval_examples": max_eval_examples,
                                "max_test_examples": max_test_examples}),
        "out": str(out),
        "layers": layers,
        "settings": asdict(settings),
        "sizes": {split: len(records[split]) for split in SPLITS},
        "max_length": hyper.max_length,
        "precision": dtype_name(dtype),
        "hardware": hardware(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "feature_seconds": round(feature_seconds, 1),
        "probe_seconds": round(probe_seconds, 1),
        "notes": splits.notes,
        **encoder_info,
        "summary": rows,
    }
    write_report(out, info, results)
    if store is not None:
        store_probes(store, info, results)
    for note in splits.notes:
        print(f"blurbkit: note: {spec.name}: {note}", file=sys.stderr)
    return info


def model_label(model: str | None) -> str:
    return "MiniLM-L6-H384 (default)" if model is None or str(model) == "default" else Path(model).name


# ---- the report ----------------------------------------------------------------------------------

def probe_table(info: dict[str, Any]) -> str:
    rows = info["summary"]
    full = rows[-1]["alphas"]
    lines = ["| layer l | test score (mean ± std) | Δ_l = score(l) − score(l−1) | dev score | α_l of the full-depth probe |",
             "|---|---|---|---|---|"]
    for row in rows:
        delta = "—" if row["delta"] is None else f"{row['delta']:+.2f}"
        name = f"{row['depth']} (embeddings)" if row["depth"] == 0 else str(row["depth"])
        lines.append(f"| {name} | {row['test_mean']:.2f} ± {row['test_std']:.2f} | {delta} | {row['dev_mean']:.2f} | "
                     f"{full[row['depth']]:.3f} |")
    last = rows[-1]
    settings, sizes = info["settings"], info["sizes"]
    verdict = "adds" if last["delta"] > 0 else "does not add"
    lines += [
        "",
        f"Layer probing of {info['model']} on {info['dataset']} ({info['metric']}, test, %): a probe per depth l over a "
        f"scalar mix of layers 0..l ({settings['pool']} pooling), MLP {settings['mlp_size']}, {settings['epochs']} epochs, "
        f"epoch chosen on dev; mean ± sample std over {settings['seeds']} seeds. Encoder frozen.",
        f"Last layer: Δ_{info['layers']} = {last['delta']:+.2f} (seed std at l = {info['layers']}: {last['test_std']:.2f}): "
        f"layer {info['layers']} {verdict} to what layers 0..{info['layers'] - 1} give the probe.",
        f"Data: train {sizes['train']}, dev {sizes['dev']}, test {sizes['test']} records; max length {info['max_length']}; "
        f"features in {info['precision']}. Hardware: {info['hardware']}; load average {info['load_average']}.",
    ]
    lines += [f"Note: {note}" for note in info["notes"]]
    return "\n".join(lines)


def write_report(out: Path, info: dict[str, Any], results: list[Any]) -> None:
    table = probe_table(info)
    with atomic_write(out / "probe.md") as handle:
        handle.write(table + "\n")
    rows: list[list[Any]] = [["layer", "test_mean", "test_std", "delta", "dev_mean", "seeds", "alpha_full_depth"]]
    alphas = info["summary"][-1]["alphas"]
    for row in info["summary"]:
        delta = "" if row["delta"] is None else f"{row['delta']:.4f}"
        rows.append([row["depth"], f"{row['test_mean']:.4f}", f"{row['test_std']:.4f}", delta,
                         f"{row['dev_mean']:.4f}", row["seeds"], f"{alphas[row['depth']]:.4f}"])
    write_csv(out / "probe.csv", rows)
    with atomic_write(out / "probe.json") as handle:
        handle.write(results_json(results, info))
    plot_probe(out / "probe.png", info)


def plot_probe(path: Path, info: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig = probe_figure(info)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
