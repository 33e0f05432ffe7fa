"""Layer probes in the results store: one row per (depth, seed) probe, study "probe", so the report
(`blurbkit report`) shows them beside every other study, and back from rows to the probe's table.

A row: variant `depth-L`, the encoder's store label, the dataset, the probe seed, the budget (the
subsample flags, as the benchmark names them), and as its settings the probe's (pooling, epochs,
lr, batch, MLP, dropout, maximum length, feature precision). Its test metrics hold the score, the
depth, the encoder's layer count, the learned α over layers 0..depth, γ and the chosen epoch.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.metrics.seeds import sample_std
from blurbkit.store.labels import DEFAULT_STORE_LABEL
from blurbkit.store.results import ResultsStore, RunKey
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.provenance import blurbkit_commit

STUDY = "probe"
DEFAULT_MODEL = "MiniLM-L6-H384 (default)"  # probe_study.model_label of the embedded encoder
BUDGET_FLAGS = {"max_train_examples": "train", "max_eval_examples": "dev", "max_test_examples": "test"}


@dataclass
class ProbeResult:
    depth: int
    seed: int
    dev_score: float
    test_score: float
    best_epoch: int
    alphas: list[float]
    gamma: float
    test: dict[str, Any] = field(default_factory=dict)


def summarise(results: Sequence[ProbeResult]) -> list[dict[str, Any]]:
    """Per depth: test mean and sample std over seeds (%), Delta to the depth before, dev mean,
    and the mean alphas over seeds."""
    rows: list[dict[str, Any]] = []
    for depth in sorted({r.depth for r in results}):
        mine = [r for r in results if r.depth == depth]
        tests = [100 * r.test_score for r in mine]
        row = {
            "depth": depth,
            "test_mean": statistics.fmean(tests),
            "test_std": sample_std(tests),
            "dev_mean": statistics.fmean(100 * r.dev_score for r in mine),
            "seeds": len(mine),
            "alphas": [statistics.fmean(a) for a in zip(*(r.alphas for r in mine), strict=True)],
            "gamma": statistics.fmean(r.gamma for r in mine),
        }
        row["delta"] = row["test_mean"] - rows[-1]["test_mean"] if rows else None
        rows.append(row)
    return rows


def probe_budget(limits: dict[str, int | None]) -> str:
    """'full', or the subsample flags as the benchmark's budget names them ('custom-train5000-test3000')."""
    flags = "-".join(f"{short}{limits[name]}" for name, short in BUDGET_FLAGS.items() if limits.get(name) is not None)
    return f"custom-{flags}" if flags else "full"


def probe_setting(info: dict[str, Any]) -> dict[str, Any]:
    """What makes two probes of one depth and seed the same probe (the seed count does not)."""
    settings = {k: v for k, v in info["settings"].items() if k != "seeds"}
    return {**settings, "max_length": info["max_length"], "precision": info["precision"]}


def probe_keys(info: dict[str, Any], results: Sequence[ProbeResult]) -> list[RunKey]:
    setting = json.dumps(probe_setting(info), sort_keys=True)
    return [RunKey(STUDY, f"depth-{r.depth}", info["store_model"], info["dataset"], r.seed, info["budget"], setting)
            for r in results]


def store_probes(path: str | Path, info: dict[str, Any], results: Sequence[ProbeResult]) -> int:
    """One row per probe (a re-run of the same probe replaces its row); how many were written."""
    store = ResultsStore(path)
    try:
        commit = blurbkit_commit()
        for key, r in zip(probe_keys(info, results), results, strict=True):
            test = {**r.test, "score": r.test_score, "depth": r.depth, "layers": info["layers"], "alphas": r.alphas,
                    "gamma": r.gamma, "best_epoch": r.best_epoch, "hardware": info.get("hardware")}
            metrics = {"metric": info["metric"], "test": test, "dev": {"score": r.dev_score}, "notes": info.get("notes", [])}
            store.add(key, metrics, commit, info.get("out"), replace=True)
    finally:
        store.close()
    return len(results)


def import_probe_json(path: Path, store: str | Path) -> tuple[dict[str, Any], int]:
    """Store the probes of an earlier `blurbkit probe` run from its probe.json, computing nothing.
    Files from before the store kept the model's directory name only and no budget flags: the
    budget is then read from the recorded split sizes."""
    try:
        data = json.loads(path.read_text("utf-8"))
        info = {k: v for k, v in data.items() if k != "results"}
        results = [ProbeResult(**r) for r in data["results"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise BlurbkitError(f"not a probe.json written by blurbkit probe ({type(err).__name__}: {err})", path=path) from None
    missing = [n for n in ("dataset", "metric", "layers", "settings", "max_length", "precision", "model") if n not in info]
    if not missing and not (isinstance(info["settings"], dict) and "pool" in info["settings"]):
        missing = ["settings.pool"]
    if missing or not results:
        raise BlurbkitError(f"not a probe.json written by blurbkit probe (no {', '.join(missing) or 'results'})", path=path)
    try:
        get_dataset(info["dataset"])
    except BlurbkitError as err:
        raise BlurbkitError(f"{err}", path=path) from None
    if "store_model" not in info:
        info["store_model"] = DEFAULT_STORE_LABEL if info["model"] == DEFAULT_MODEL else info["model"]
    if "budget" not in info:
        sizes = info.get("sizes", {})
        budgeted = any(str(n).startswith("BUDGET RUN") for n in info.get("notes", []))
        info["budget"] = probe_budget({"max_train_examples": sizes.get("train"), "max_eval_examples": sizes.get("dev"),
                                       "max_test_examples": sizes.get("test")}) if budgeted else "full"
    info.setdefault("out", str(path.parent))
    return info, store_probes(store, info, results)


def probe_sections(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored probe rows back to probe_study's `info` (with its `summary`), one per (model, dataset,
    budget, setting), in store order; a later row of the same probe replaces an earlier one."""
    groups: dict[tuple[str, str, str, str], dict[tuple[int, int], dict[str, Any]]] = {}
    for row in rows:
        if row.get("status", "ok") != "ok" or row["test_score"] is None:
            continue
        test = json.loads(row["test_metrics"])
        key = (row["model"], row["dataset"], row["budget"], row["hyperparameters"])
        groups.setdefault(key, {})[(test["depth"], row["seed"])] = {**row, "_test": test}
    out = []
    for (model, dataset, budget, setting), probes in groups.items():
        results = [ProbeResult(t["depth"], r["seed"], r["dev_score"], r["test_score"], t.get("best_epoch", 0),
                               t["alphas"], t.get("gamma", 1.0)) for r in probes.values() for t in [r["_test"]]]
        results.sort(key=lambda r: (r.depth, r.seed))
        first = next(iter(probes.values()))
        settings = json.loads(setting)
        summary = summarise(results)
        layers = first["_test"].get("layers", max(r.depth for r in results))
        out.append({"model": model, "store_model": model, "dataset": dataset, "budget": budget,
                    "metric": first["metric"], "layers": layers, "settings": {**settings, "seeds": max(s["seeds"] for s in summary)},
                    "hardware": first["_test"].get("hardware"), "notes": json.loads(first.get("notes") or "[]"),
                    "summary": summary, "complete": [s["depth"] for s in summary] == list(range(layers + 1)),
                    "results": [asdict(r) for r in results]})
    return out


def probe_figure(info: dict[str, Any]) -> Any:
    """score(l) with its seed spread, Delta_l per layer, and the full-depth probe's alphas (a figure
    the caller saves and closes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = info["summary"]
    depths = [r["depth"] for r in rows]
    fig, (score, gain, right) = plt.subplots(1, 3, figsize=(13, 3.8))
    score.errorbar(depths, [r["test_mean"] for r in rows], yerr=[r["test_std"] for r in rows], color="black",
                   marker="o", capsize=3)
    score.set_xlabel("depth l (probe over layers 0..l)")
    score.set_ylabel(f"score(l), test {info['metric']} (%)")
    score.set_xticks(depths)
    score.set_title(f"{info['dataset']}: probe score by depth")
    deltas = [r["delta"] for r in rows[1:]]
    gain.bar(depths[1:], deltas, color=["tab:blue" if d > 0 else "tab:orange" for d in deltas])
    gain.axhline(0, color="black", linewidth=0.8)
    gain.set_xlabel("layer l")
    gain.set_ylabel("Δ_l = score(l) − score(l−1)")
    gain.set_xticks(depths[1:])
    gain.set_title("what layer l adds")
    right.bar(depths, rows[-1]["alphas"], color="tab:green")
    right.set_xlabel("layer (0 = embeddings)")
    right.set_ylabel("α (softmax weight)")
    right.set_xticks(depths)
    right.set_title(f"scalar-mix weights, full-depth probe (γ = {rows[-1]['gamma']:.2f})")
    fig.suptitle(f"{info['model']}, {info['settings']['pool']} pooling, {info['settings']['seeds']} seeds", fontsize=9)
    fig.tight_layout()
    return fig
