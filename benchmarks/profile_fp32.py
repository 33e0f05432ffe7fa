"""Where a training step and a prediction pass spend their time (torch.profiler), on any dtype path.

    BLURBKIT_CPU_DTYPES=fp32 OMP_NUM_THREADS=1 python benchmarks/profile_fp32.py --steps 20 --sentences 500

Prints the top operators by self CPU time for the blurbkit side of `bench speed` (training steps on
BC5-chem batches of 32) and of `bench inference` (Engine.predict on dev sentences). Engine options
as KEY=VALUE (e.g. fast_dropout=false) study one setting at a time.
"""

from __future__ import annotations

import argparse
import time

import torch

from blurbkit.data.load import load_split, subsample
from blurbkit.models.encoding import encode
from blurbkit.models.loading import resolve_model_dir
from blurbkit.speed.compare import Workload, build_engine
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.engine import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="bc5chem")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--data", default=None)
    parser.add_argument("--part", choices=["train", "predict", "both"], default="both")
    parser.add_argument("options", nargs="*", help="engine options KEY=VALUE")
    args = parser.parse_args()
    options = {}
    for item in args.options:
        key, _, value = item.partition("=")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    spec = get_dataset(args.dataset)
    train = subsample(load_split(args.dataset, "train", args.data), args.steps * 32, 0)
    dev = subsample(load_split(args.dataset, "dev", args.data), args.sentences, 0)
    work = Workload(spec=spec, model_dir=resolve_model_dir(None), train=train, dev=dev)
    config = FinetuneConfig(dataset=args.dataset, seed=0, epochs=1, batch_size=32, progress=False, save_model=False, **options)
    seed_everything(0)
    engine, recipe = build_engine(work, config)
    train_enc = encode(train, engine.codec, recipe, engine.tokenizer, cache=False)
    dev_enc = encode(dev, engine.codec, recipe, engine.tokenizer, cache=False)
    print(f"threads {torch.get_num_threads()}, dtype {engine.dtype}, options {options}")
    if args.part in ("train", "both"):
        engine.train(train_enc, None)  # warm-up epoch (allocator, first-call costs)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            result = engine.train(train_enc, None)
            seconds = time.perf_counter() - started
        print(f"train: {len(train_enc.examples) / seconds:.1f} ex/s under the profiler ({result.train_examples_per_second:.1f} loop)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.part in ("predict", "both"):
        engine.predict(dev_enc)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            engine.predict(dev_enc)
            seconds = time.perf_counter() - started
        print(f"predict: {len(dev_enc.examples) / seconds:.1f} ex/s under the profiler")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
