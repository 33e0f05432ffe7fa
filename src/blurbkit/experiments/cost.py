"""What a sweep costs before it runs: seconds per run from measured throughput (store rows of the
same model: train_examples_per_second and wall_seconds; or a short calibration run), CPU-hours,
and the wall time on N runs at once, simulated in the order the driver submits (search runs
first, a dataset's test runs once its search is done)."""

from __future__ import annotations

import functools
import heapq
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.train.config import FinetuneConfig

OVERHEAD = 8.0  # s per run without a calibration: a worker process, the model and the data loaded
EVAL_SPEEDUP = 3.0  # inference vs training examples/s, when a row does not tell them apart
# Two epochs: the first holds the run's one-time warm-up (it took 35-37 % longer than later epochs of a
# 64-example GAD run on a 2-core AVX2-only EPYC, fp32, shared cores), which a
# run of thousands of steps pays once; the second is the steady rate.
CALIBRATION = {"max_train_examples": 64, "max_eval_examples": 32, "max_test_examples": 32, "epochs": 2}


@dataclass(frozen=True)
class Rates:
    train: float  # train examples (windows) per second
    evaluate: float  # dev/test examples per second
    overhead: float  # seconds per run outside training and scoring
    source: str

    def run_seconds(self, sizes: dict[str, int], epochs: int) -> float:
        """Training for `epochs`, dev scored after each epoch and once more at the end, then test."""
        return (self.overhead + sizes["train"] * epochs / self.train
                + (sizes["dev"] * (epochs + 1) + sizes["test"]) / self.evaluate)


def split_sizes(config: FinetuneConfig) -> dict[str, int]:
    """Records per split as the run would use them (subsamples applied). A train split that is not
    distributed here (EBM PICO) is estimated from the published counts, scaled like dev."""
    from blurbkit.data.load import split_size
    from blurbkit.tasks.registry import get_dataset

    options = config.read_options()
    sizes: dict[str, int] = {}
    for split in ("dev", "test", "train"):
        try:
            sizes[split] = split_size(config.dataset, split, config.data, options)
        except BlurbkitError:
            if split != "train":
                raise
            published = get_dataset(config.dataset).published
            scale = sizes["dev"] / published["dev"] if published.get("dev") else 1.0
            sizes["train"] = int(published.get("train", sizes["dev"]) * scale)
    for split, cap in (("train", config.max_train_examples), ("dev", config.max_eval_examples),
                       ("test", config.max_test_examples)):
        if cap is not None:
            sizes[split] = min(sizes[split], cap)
    return sizes


def machine_precision(config: FinetuneConfig) -> str:
    """The precision `config`'s runs compute in on this machine, named as runs store it."""
    return _machine_precision(config.precision)


@functools.cache  # once per requested precision: a bf16 request on an fp32 CPU says so once, not per dataset
def _machine_precision(requested: str) -> str:
    from blurbkit.runtime.precision import autocast_dtype, dtype_name, pick_device

    return dtype_name(autocast_dtype(requested, pick_device()))


def rates_from_rows(rows: Sequence[dict[str, Any]], base: FinetuneConfig, threads: int,
                    precision: str | None = None, batch_size: int | None = None) -> Rates | None:
    """From the finished run of this model on this dataset in the store with the median training rate
    (one run paused or sharing its cores does not move it: the longest run, taken before, was such a
    run: GAD's 3,411 s run, 11 train examples/s where its siblings trained 46-59), at `threads` per
    run: a run measured at another thread count is scaled as if its CPU time stayed the same (a
    little pessimistic for fewer threads, optimistic for more: threads never scale perfectly).
    With `precision` (this machine's), runs of another precision (merged from another CPU class,
    2-4x apart) are used only when there is no other, and the source says so. With `batch_size`,
    runs at that batch size first (GAD trains 46 examples/s at 16, 59 at 32 on one thread)."""
    usable = [r for r in rows if r.get("status", "ok") == "ok" and r["train_examples_per_second"] and r["wall_seconds"]]
    if not usable:
        return None
    elsewhere = ""
    if precision is not None:
        same = [r for r in usable if r.get("precision") in (precision, None)]  # None: not recorded (older runs)
        if same:
            usable = same
        else:
            kinds = "/".join(sorted({r["precision"] for r in usable}))
            elsewhere = f"; measured in {kinds}, this machine computes {precision}: another CPU class"
    if batch_size is not None:
        from blurbkit.tasks.registry import get_dataset

        recipe = get_dataset(base.dataset).recipe.batch_size  # a run at the recipe's batch size stores none
        sized = [r for r in usable if (json.loads(r["hyperparameters"]).get("batch_size") or recipe) == batch_size]
        if sized:
            usable, elsewhere = sized, f", batch {batch_size}{elsewhere}"
    row = sorted(usable, key=lambda r: r["train_examples_per_second"])[len(usable) // 2]
    measured = row.get("threads")
    scale = threads / measured if measured else 1.0
    known = set(FinetuneConfig.option_names())
    hyper = {k: v for k, v in json.loads(row["hyperparameters"]).items() if k in known}
    config = base.replace(**hyper)
    from blurbkit.tasks.registry import get_dataset

    epochs = config.epochs or get_dataset(config.dataset).recipe.epochs
    sizes = split_sizes(config)
    train_seconds = sizes["train"] * epochs / row["train_examples_per_second"]
    eval_seconds = row["wall_seconds"] - train_seconds
    evaluated = sizes["dev"] * (epochs + 1) + sizes["test"]
    if eval_seconds > 0.05 * row["wall_seconds"]:
        evaluate = evaluated / eval_seconds
    else:
        evaluate = EVAL_SPEEDUP * row["train_examples_per_second"]
    at = f"{measured} thread{'s' if measured != 1 else ''}" if measured else "threads not recorded"
    return Rates(row["train_examples_per_second"] * scale, evaluate * scale, OVERHEAD,
                 f"store ({len(usable)} run{'s' if len(usable) != 1 else ''}, {at}{elsewhere})")


def calibrate(base: FinetuneConfig, threads: int) -> Rates:
    """A short run in this process (64 train examples, two epochs, 32 dev and test) at `threads`:
    training at the last epoch's rate, the first epoch's extra time counted once per run."""
    import torch

    from blurbkit.train.run import run_finetune

    torch.set_num_threads(threads)
    config = base.replace(out=None, save_model=False, progress=False, threads=threads, seed=0, **CALIBRATION)
    started = time.perf_counter()
    try:
        metrics = run_finetune(config)
    except BlurbkitError:
        if config.pico_train_from_dev is not None:
            raise
        # No train split distributed here (EBM PICO): time the same work on records carved from dev.
        config = config.replace(pico_train_from_dev=CALIBRATION["max_train_examples"])
        started = time.perf_counter()
        metrics = run_finetune(config)
    total = time.perf_counter() - started
    sizes = {"train": metrics["train_examples"], "dev": metrics["dev"].get("n", 0), "test": metrics["test"].get("n", 0)}
    sizes = split_sizes(config) if not (sizes["dev"] and sizes["test"]) else sizes
    eval_seconds = max(metrics["wall_seconds"] - metrics["train_seconds"] - metrics["encode_seconds"], 1e-3)
    evaluate = (sizes["dev"] * (config.epochs + 1) + sizes["test"]) / eval_seconds
    # Only length-grouped full runs pad less than the calibration; plain-shuffled ones pad as much.
    train = steady_train_rate(metrics, unpadded=config.group_by_length)
    epochs = metrics.get("epoch_train_seconds") or []
    # Outside the steady epochs: loading, encoding and the first epoch's warm-up.
    trained = config.epochs * epochs[-1] if len(epochs) >= 2 else metrics["train_windows"] * config.epochs / train
    overhead = max(total - trained - eval_seconds, 0.0)
    return Rates(train, evaluate, overhead, "calibration")


def steady_train_rate(metrics: dict[str, Any], unpadded: bool = True) -> float:
    """Train windows per second in a run's last epoch (its whole training where epochs were not timed).
    With `unpadded` (a full run's batches are length-grouped), the last epoch's time per computed
    token position is charged for its windows' own tokens: a 64-example run falls into a few wide
    batches padded to their longest row (GAD: 1.37x the tokens at batch 16, 1.79x at batch 32), where
    a full run's length-grouped batches pad about 1.03x. Per-step work that does not shrink with
    padding (the optimizer step, gradient clipping) is scaled as if it did, which errs fast; the
    first epoch's extra time is the run's overhead (calibrate)."""
    epochs = metrics.get("epoch_train_seconds") or []
    if len(epochs) < 2 or epochs[-1] <= 0:
        return metrics["train_examples_per_second"]
    padded = metrics.get("epoch_padded_tokens") or []
    tokens = metrics.get("train_tokens")
    if unpadded and len(padded) == len(epochs) and padded[-1] > 0 and tokens:
        return metrics["train_windows"] * padded[-1] / (tokens * epochs[-1])
    return metrics["train_windows"] / epochs[-1]


def simulate(datasets: Sequence[tuple[Sequence[float], Sequence[float]]], slots: int) -> float:
    """Wall seconds for (search run seconds, test run seconds) per dataset on `slots` runs at once:
    first come first served, a dataset's test runs queued when its last search run ends."""
    queue: deque[tuple[int, float, bool]] = deque()
    left = [len(search) for search, _ in datasets]
    for d, (search, test) in enumerate(datasets):
        queue.extend((d, s, True) for s in search)
        if not search:
            queue.extend((d, t, False) for t in test)
    running: list[tuple[float, int, bool]] = []
    now, free = 0.0, max(1, slots)
    while queue or running:
        while queue and free:
            d, seconds, search = queue.popleft()
            heapq.heappush(running, (now + seconds, d, search))
            free -= 1
        now, d, search = heapq.heappop(running)
        free += 1
        if search:
            left[d] -= 1
            if left[d] == 0:
                queue.extend((d, t, False) for t in datasets[d][1])
    return now


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
