"""Resident memory of a fine-tuning process under each way of handing the tuned heap back.

A slice of HoC (512 subwords: the dataset whose full-data run filled a 24 GB machine), 1 epoch, one
thread; RSS sampled every 0.5 s in the process. Variants (`runtime/allocator.py`):
  default  the shipped HeapGuard (release below 25 % available or above 50 % of memory; each epoch's end)
  never    only each epoch's end
  timer30  a release every 30 s whatever the memory (HeapGuard that always sees memory as short)
  share15  the HeapGuard with the process share lowered to 15 %
  mmap32   blocks above 32 MiB from mmap (glibc's own limit) instead of the tuned heap; epoch end only

    OMP_NUM_THREADS=1 python benchmarks/memory_finetune.py --variant never --train-examples 200 \
        --data ../shared/data --out benchmarks/results/memory_hoc_never.json

Run each variant in its own process (the allocator settings are process-wide).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

VARIANTS = ("default", "never", "timer30", "share15", "mmap32")


def _resident_mb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 >> 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, default="default")
    parser.add_argument("--dataset", default="hoc")
    parser.add_argument("--train-examples", type=int, default=200)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import blurbkit
    from blurbkit.inference import runner
    from blurbkit.runtime import allocator

    never = dict(min_available=0.0, max_share=float("inf"))
    guards = {"never": never, "timer30": dict(min_available=1.01, min_interval=30.0),
              "share15": dict(max_share=0.15), "mmap32": never}
    if args.variant in guards:
        options = guards[args.variant]
        runner.HeapGuard = lambda: allocator.HeapGuard(**options)
    if args.variant == "mmap32":
        allocator.MMAP_THRESHOLD = 32 << 20

    samples: list[tuple[float, int]] = []
    started = time.time()

    def sample() -> None:
        while True:
            samples.append((round(time.time() - started, 1), _resident_mb()))
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as out:
        metrics = blurbkit.finetune(args.dataset, out=Path(out) / "run", epochs=1, seed=1, data=args.data,
                                    max_train_examples=args.train_examples, max_eval_examples=20, progress=False)
    peak = max(mb for _, mb in samples)
    result = {"variant": args.variant, "dataset": args.dataset, "train_examples": args.train_examples,
              "train_seconds": metrics["train_seconds"], "wall_seconds": round(time.time() - started, 1),
              "peak_rss_mb": peak, "end_rss_mb": samples[-1][1], "rss_every_5s": samples[::10]}
    print(json.dumps({k: v for k, v in result.items() if k != "rss_every_5s"}))
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
