"""Can the ELECTRA discriminator see the replacements it is given? The same from-scratch ELECTRA run
with the generator's samples drawn three ways: from the learned generator (the objective as it is),
uniformly over the vocabulary (mostly rare pieces out of place), and from the corpus's unigram
distribution (frequent pieces: what a generator that has learned little context produces).

Usage: OMP_NUM_THREADS=1 python benchmarks/electra_replacements.py [--steps 400] [--preset tiny]
Writes benchmarks/results/electra_replacements_<preset>_<steps>.json (or --name NAME.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

from blurbkit.fileio import write_json

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("generator", "uniform", "unigram")


def unigram_log_probs(cache_dir: Path) -> np.ndarray:
    """log p(piece) over the tokenised corpus (add-1e-3 smoothing for pieces that never occur)."""
    meta = json.loads((cache_dir / "meta.json").read_text(encoding="utf-8"))
    tokens = np.fromfile(cache_dir / "tokens.bin", dtype=np.dtype(meta["dtype"]))
    counts = np.bincount(tokens).astype(np.float64)
    return counts, np.log((counts + 1e-3) / (counts + 1e-3).sum())


def patched_generate(kind: str, log_probs: np.ndarray | None):
    """ElectraModule.generate with the generator's loss kept but its samples drawn another way."""
    import torch

    from blurbkit.pretrain.objectives.electra import ElectraModule

    original = ElectraModule.generate
    fixed = None if log_probs is None else torch.tensor(log_probs, dtype=torch.float32)

    def generate(self, input_ids, attention_mask, token_type_ids, masked_index):
        logits = original(self, input_ids, attention_mask, token_type_ids, masked_index)
        if kind == "uniform":
            return torch.zeros_like(logits)
        padded = torch.full((logits.shape[-1],), -30.0)
        padded[: fixed.numel()] = fixed[: logits.shape[-1]]
        return padded.expand_as(logits).clone()

    return mock.patch.object(ElectraModule, "generate", generate)


def last_logged(log: Path, rows: int = 10) -> dict[str, float]:
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    tail = entries[-rows:]
    out = {key: statistics.fmean(e[key] for e in tail) for key in ("gen_loss", "rtd_loss", "rtd_accuracy", "replaced_fraction")}
    p = out["replaced_fraction"]
    out["prior_accuracy"] = 1 - p  # "nothing was replaced" everywhere
    out["prior_entropy"] = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    out["first_logged"] = {key: entries[0][key] for key in ("step", "rtd_loss", "rtd_accuracy")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", help="default: DATA/pubmed_text")
    parser.add_argument("--tokenizer", default="default")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-docs", type=int, default=100000)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--runs-dir", type=Path, default=Path(os.environ.get("BLURBKIT_RUNS", "runs")) / "electra_replacements")
    parser.add_argument("--name", help="result file name (default electra_replacements_PRESET_STEPS.json)")
    args = parser.parse_args()

    from blurbkit.data.load import default_data
    from blurbkit.pretrain.config import PretrainConfig
    from blurbkit.pretrain.trainer import pretrain
    from blurbkit.speed.machine import machine_info

    corpus = args.corpus or str(Path(default_data()) / "pubmed_text")
    cache = args.runs_dir / "cache"
    results: dict[str, object] = {
        "command": _command(),
        "machine": {**machine_info(), "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
                    "python": platform.python_version()},
        "settings": {"preset": args.preset, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                     "max_length": 128, "max_docs": args.max_docs, "objective": "electra", "generator_size": 0.25},
        "kinds": {},
    }
    for kind in args.kinds:
        out = args.runs_dir / kind
        config = PretrainConfig(corpus=[corpus], out=str(out), tokenizer=args.tokenizer, from_scratch=args.preset,
                                max_length=128, batch_size=args.batch_size, lr=args.lr, max_steps=args.steps,
                                objective="electra", max_docs=args.max_docs, cache_dir=str(cache), log_every=20,
                                save_every=10 ** 9, progress=False, resume=False)
        log_probs = None
        if kind == "unigram":
            if not (cache / "tokens.bin").is_file():
                raise SystemExit("unigram: run a kind that builds the token cache first (the default order does)")
            counts, log_probs = unigram_log_probs(cache)
            p = counts / counts.sum()
            results["corpus_unigram_entropy_nats"] = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        started = time.perf_counter()
        if kind == "generator":
            pretrain(config)
        else:
            with patched_generate(kind, log_probs):
                pretrain(config)
        summary = last_logged(out / "train_log.jsonl")
        summary["seconds"] = round(time.perf_counter() - started, 1)
        results["kinds"][kind] = summary
        print(f"{kind}: replaced-token accuracy {summary['rtd_accuracy']:.4f} vs prior {summary['prior_accuracy']:.4f}; "
              f"RTD loss {summary['rtd_loss']:.4f} vs prior entropy {summary['prior_entropy']:.4f}", flush=True)
    name = (args.name or f"electra_replacements_{args.preset}_{args.steps}").removesuffix(".json")
    write_json(RESULTS / f"{name}.json", results)
    print(f"wrote {RESULTS / f'{name}.json'}")


def _command() -> str:
    """This command as run, without the value of --runs-dir (a local path, not part of the result)."""
    argv, out, skip = sys.argv[1:], [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--runs-dir":
            skip = True
            continue
        if not arg.startswith("--runs-dir="):
            out.append(arg)
    return " ".join(["python benchmarks/electra_replacements.py", *out])



if __name__ == "__main__":
    main()
