"""A tiny results store made by hand for the report tests: two models on all 13 datasets (quick
budget, 2-3 seeds, run directories with run.json and epochs.jsonl), a failed run, budget and
deviation notes, and a stability study. No training: rows and run directories are written directly."""

from __future__ import annotations

import json
import random
from pathlib import Path

from blurbkit.store.results import ResultsStore, RunKey
from blurbkit.tasks.registry import blurb_datasets

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
    store.close()
    return path
