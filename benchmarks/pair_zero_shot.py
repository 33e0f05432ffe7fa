"""Zero-shot sentence similarity: the bi-encoder model (featurizer siamese_mean + head cosine, which has
no parameters) scored before any fine-tuning, i.e. the pretrained encoder's own cosine similarity of
mean-pooled sentence embeddings, with the dataset's official metric.

    python benchmarks/pair_zero_shot.py --dataset biosses --data ../shared/data [--model DIR]

Prints one JSON object (score per split, the machine) — the level fine-tuning starts from.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="biosses", help="a sentence-pair dataset (default biosses)")
    parser.add_argument("--data", help="prepared directory or raw data folder (default: ../shared/data)")
    parser.add_argument("--model", help="encoder directory (default: the embedded MiniLM)")
    args = parser.parse_args()

    from blurbkit.models.encoding import encode
    from blurbkit.models.loading import resolve_model_dir, store_label
    from blurbkit.speed.machine import machine_info
    from blurbkit.tasks.registry import get_dataset
    from blurbkit.train.config import FinetuneConfig
    from blurbkit.train.run import build_engine, load_splits

    spec = get_dataset(args.dataset)
    config = FinetuneConfig(dataset=spec.name, data=args.data, model=args.model, featurizer="siamese_mean",
                            head="cosine", progress=False)
    hyper = config.hyper.resolved(spec)
    splits = load_splits(spec, config, hyper)
    engine = build_engine(spec, config, hyper, resolve_model_dir(args.model), splits.train)
    result = {"dataset": spec.name, "model": store_label(args.model), "metric": spec.metric,
              "parts": "siamese_mean + cosine, not fine-tuned", "machine": machine_info()}
    for name, records in (("train", splits.train), ("dev", splits.dev), ("test", splits.test)):
        started = time.perf_counter()
        scored = engine.score(encode(records, engine.codec, engine.model.recipe, engine.tokenizer), name)
        result[name] = {"score": round(100 * scored["score"], 2), "examples": len(records),
                        "seconds": round(time.perf_counter() - started, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
