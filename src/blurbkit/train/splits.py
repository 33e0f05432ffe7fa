"""The data a fine-tuning run trains, selects and is scored on: its splits (budget subsamples and
every departure from the protocol written down as a note), and the test records a stored run
scored. No torch here: the report and `blurbkit compare` read test records without the engine."""

from __future__ import annotations

from dataclasses import dataclass

from blurbkit.data.load import load_split, split_notes, subsample
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import DatasetSpec, get_dataset
from blurbkit.train.config import FinetuneConfig, Hyperparams

EVAL_SUBSAMPLE_SEED = 0  # dev/test subsamples are the same for every seed, so seeds stay comparable


@dataclass
class Splits:
    train: list[dict]
    dev: list[dict]  # what each epoch and the best epoch are scored on (a subsample in budget runs)
    test: list[dict]
    notes: list[str]


def load_splits(spec: DatasetSpec, config: FinetuneConfig, hyper: Hyperparams) -> Splits:
    """The run's data, with every way it departs from the protocol written down as a note."""
    options = config.read_options()
    loaded = {name: load_split(spec.name, name, config.data, options) for name in ("train", "dev", "test")}
    notes = list(split_notes(spec.name, config.data, options))
    train = subsample(loaded["train"], config.max_train_examples, config.seed)
    if len(train) < len(loaded["train"]):
        notes.append(f"BUDGET RUN: trained on a seeded subsample of {len(train)} of {len(loaded['train'])} train records")
    test = subsample(loaded["test"], config.max_test_examples, EVAL_SUBSAMPLE_SEED)
    if len(test) < len(loaded["test"]):
        notes.append(f"BUDGET RUN: test scored on a seeded subsample of {len(test)} of {len(loaded['test'])} test records")
    if hyper.max_length < spec.max_length and not spec.task.windowed:
        # Token tasks lose no word (long inputs are windowed); sequence tasks are cut short.
        notes.append(f"inputs truncated at {hyper.max_length} subwords (protocol: {spec.max_length})")
    if not train:
        raise BlurbkitError(f"dataset {spec.name}: the train split is empty")
    dev = subsample(loaded["dev"], config.max_eval_examples, EVAL_SUBSAMPLE_SEED)
    check_dev_options(spec, hyper, dev)
    return Splits(train, dev, test, notes)


def test_records(config: FinetuneConfig) -> list[dict]:
    """The test records a run of `config` scored, in order (its seeded subsample in budget runs):
    the gold its predictions/test file is aligned with (experiments/compare.py reads them)."""
    spec = get_dataset(config.dataset)
    options = config.read_options()
    return subsample(load_split(spec.name, "test", config.data, options), config.max_test_examples, EVAL_SUBSAMPLE_SEED)


def check_dev_options(spec: DatasetSpec, hyper: Hyperparams, dev: list[dict]) -> None:
    """Early stopping and the train+dev final model choose on dev: without one, refused before training."""
    for wanted, flag in ((hyper.patience is not None, "--patience"), (hyper.final_on_train_dev, "--final-on-train-dev")):
        if wanted and not dev:
            raise BlurbkitError(f"{flag} chooses the epoch on dev, and dataset {spec.name} has no dev split here")
