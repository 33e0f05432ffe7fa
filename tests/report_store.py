"""A tiny results store made by hand for the report tests: two models on all 13 datasets (quick
budget, 2-3 seeds, run directories with run.json and epochs.jsonl), a failed run, budget and
deviation notes, a stability study, and the studies with pages of their own shape (STILT, AIMed
cross-validation, layer probing, the cost table). No training: rows and run directories are written directly."""

from __future__ import annotations

import json
import random
from pathlib import Path

from blurbkit.store.results import ResultsStore, RunKey
from blurbkit.tasks.registry import blurb_datasets, get_dataset

MINILM = "default (MiniLM-L6-H384)"


def _run_dir(root: Path, key: RunKey, score: float, notes: list[str]) -> Path:
    out = root / "runs" / key.study / key.variant / key.dataset / f"seed{key.seed}-{key.digest()[:10]}"
    out.mkdir(parents=True)
    info = {"config": {"dataset": key.dataset, "seed": key.seed, "lr": 1e-4}, "versions": {"torch": "2.13.0"},
            "data_sha256": {"test": "ab" * 32}, "notes": notes}
    (out / "run.json").write_text(json.dumps(info), encoding="utf-8")
    curve = [{"epoch": e, "score": score * (0.6 + 0.2 * e)} for e in (1, 2)]
    (out / "epochs.jsonl").write_text("".join(json.dumps(c) + "\n" for c in curve), encoding="utf-8")
    return out


def _add(store: ResultsStore, root: Path, key: RunKey, metric: str, score: float, notes: list[str]) -> None:
    run_dir = _run_dir(root, key, score, notes)
    metrics = {"metric": metric, "test": {"score": score, "trivial_score": 0.0}, "dev": {"score": score * 1.01},
               "wall_seconds": 10.0 + key.seed, "notes": notes}
    store.add(key, metrics, "0123456789abcdef", str(run_dir))


def make_store(root: Path) -> Path:
    """The store file; the second model is about 8 points behind on every dataset."""
    path = root / "runs" / "results.sqlite"
    store = ResultsStore(path)
    rng = random.Random(0)
    tiny = str(root / "models" / "tiny-bert")
    for model, shift, seeds in ((MINILM, 0.0, 3), (tiny, -0.08, 2)):
        for spec in blurb_datasets():
            notes = ["BUDGET RUN: trained on a seeded subsample of 800 of 5000 train records"]
            if spec.name == "ebm_pico":
                notes.append("LOCAL DEVIATION: train = 200 dev abstracts")
            for seed in range(seeds):
                key = RunKey("benchmark", "standard", model, spec.name, seed, "quick", json.dumps({"lr": 1e-4}))
                _add(store, root, key, spec.metric, 0.6 + shift + 0.02 * rng.random(), notes)
    store.add_failed(RunKey("benchmark", "standard", tiny, "ddi", 2, "quick", json.dumps({"lr": 1e-4})),
                     "relation_micro_f1", "out of memory while training", "0123456789abcdef", None)
    for variant, base in (("standard", 0.3), ("no-bias-correction", 0.25)):
        for seed in range(3):
            key = RunKey("optimization", variant, MINILM, "biosses", seed, "quick", json.dumps({"lr": 1e-4, "v": variant}))
            _add(store, root, key, "pearson", base + 0.05 * rng.random(), [])
    add_studies(store, root, rng)
    store.close()
    return path


def add_studies(store: ResultsStore, root: Path, rng: random.Random) -> None:
    from blurbkit.analysis.probe_results import store_probes
    from blurbkit.analysis.probing import ProbeResult
    from blurbkit.experiments import cost_store, stilt

    digests = {}
    for dataset in ("gad", "biosses"):
        for seed in range(2):
            key = RunKey("stilt", stilt.BASELINE, MINILM, dataset, seed, "quick", json.dumps({"lr": 1e-4}))
            _add(store, root, key, get_dataset(dataset).metric, 0.5 + 0.1 * rng.random(), [])
            digests[(dataset, seed)] = key.digest()
    for source, target in (("gad", "biosses"), ("biosses", "gad")):
        for seed in range(2):
            key = RunKey("stilt", stilt.transfer_variant(source, digests[(source, seed)]), MINILM, target, seed, "quick",
                         json.dumps({"lr": 1e-4, "model": source}))
            _add(store, root, key, get_dataset(target).metric, 0.5 + 0.1 * rng.random(), [])
    for variant, featurizer in (("default", None), ("featurizer=sll_attention", "sll_attention")):
        for fold in range(3):
            key = RunKey("cv", variant, MINILM, "aimed", 0, "quick", json.dumps({"fold": fold, "featurizer": featurizer}))
            store.add(key, {"metric": "relation_micro_f1", "test": {"score": 0.3 + 0.1 * rng.random(), "precision": 0.4,
                                                                    "recall": 0.3, "n": 500, "n_gold": 90},
                            "dev": {"score": 0.3}}, "c", None)
    info = {"dataset": "ddi", "metric": "relation_micro_f1", "store_model": MINILM, "layers": 1, "budget": "quick",
            "settings": {"pool": "cls", "epochs": 2}, "max_length": 64, "precision": "bfloat16", "hardware": "a CPU"}
    store_probes(store.path, info, [ProbeResult(d, s, 0.1 * d, 0.2 * d + 0.01 * s, 1, [1 / (d + 1)] * (d + 1), 1.0)
                                    for d in range(2) for s in range(2)])
    row = {"model": "MiniLM-L6-H384 (default)", "weights": "pretrained", "parameters": 22567686, "train_examples_timed": 64,
           "epochs_timed": 1, "train_split": 18035, "extrapolated": True, "timed_seconds": 2.0, "epoch_seconds": 560.0,
           "three_epoch_seconds": 1680.0, "examples_per_second": 32.0, "tokens_per_second": 2000.0, "peak_memory_mb": 900.0,
           "precision": "bfloat16"}
    cost_store.store_costs(store.path, "chemprot", [MINILM], [row], {"cpu": "a CPU", "torch_threads": 1, "device": "cpu"})
