"""Pretraining throughput (tokens/s, forward+backward+AdamW step) of the presets on this machine.

Usage: nice -n 10 python benchmarks/pretrain_throughput.py [--presets tiny mini small] [--threads 1]
Needs a corpus and a tokenizer (defaults: the runs folder of pretrain_from_scratch.py).
Writes benchmarks/results/pretrain_throughput.json (or --name NAME.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from blurbkit.fileio import write_json

RUNS = Path(os.environ.get("BLURBKIT_RUNS", "/tmp/blurbkit_pretrain_runs"))
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(RUNS / "pubmed.jsonl.gz"))
    parser.add_argument("--tokenizer", default=str(RUNS / "pubmed_vocab"))
    parser.add_argument("--presets", nargs="+", default=["tiny", "mini", "small"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--note", default="2 cores shared with other jobs; numbers are a lower bound")
    parser.add_argument("--default-malloc", action="store_true", help="PretrainConfig.tune_allocator=False")
    parser.add_argument("--name", default="pretrain_throughput", help="results file name (without .json)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from blurbkit.pretrain.config import PretrainConfig
    from blurbkit.pretrain.trainer import pretrain

    results = []
    for preset in args.presets:
        out = RUNS / f"throughput_{preset}"
        cfg = PretrainConfig(corpus=[args.corpus], out=str(out), tokenizer=args.tokenizer, from_scratch=preset,
                             max_length=args.max_length, batch_size=args.batch_size, max_steps=args.steps,
                             log_every=args.steps // 3, save_every=10**9, resume=False, max_docs=3000,
                             cache_dir=str(RUNS / "throughput_cache"), progress=False,
                             tune_allocator=not args.default_malloc)
        pretrain(cfg)
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        steady = log[1:]  # the first window includes start-up
        tok_s = sum(e["tokens_per_s"] for e in steady) / len(steady)
        from transformers import AutoConfig

        conf = AutoConfig.from_pretrained(str(out))
        params = sum(p.numel() for p in __import__("transformers").AutoModelForMaskedLM.from_pretrained(str(out), use_safetensors=True).parameters())
        row = {"preset": preset, "layers": conf.num_hidden_layers, "hidden": conf.hidden_size, "params_M": round(params / 1e6, 2),
               "tokens_per_s": round(tok_s), "batch": args.batch_size, "max_length": args.max_length, "threads": args.threads}
        print(json.dumps(row), flush=True)
        results.append(row)
    RESULTS.mkdir(exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "note": args.note}, "results": results}
    write_json(RESULTS / f"{args.name}.json", report)


if __name__ == "__main__":
    main()
