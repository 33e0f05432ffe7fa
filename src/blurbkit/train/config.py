"""What one fine-tuning run is, split by kind: the run itself (dataset, model, seed, data, output),
its hyperparameters, its model choices (Figure 2 parts), and runtime settings.

`FinetuneConfig` bundles the four and is built from flat options, as the CLI and the Python API
take them (``FinetuneConfig(dataset="bc5chem", lr=3e-5, scheme="bioul")``); `to_json()` flattens
it back (run.json and the results store's run key). The engine reads only the resolved
`Hyperparams` and the `RuntimeSettings`; inference reads only `RuntimeSettings`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from blurbkit.arguments import check_fields
from blurbkit.errors import BlurbkitError
from blurbkit.runtime.settings import RuntimeSettings

MIN_LENGTH = 4  # subwords: [CLS], [SEP] and room for a word


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    out: Path | None = None  # run directory; None = keep nothing on disk (in-memory run)
    data: str | Path | None = None  # prepared dir or raw source folder (e.g. ../shared/data)
    model: str | Path | None = None  # local HF directory; None = the embedded MiniLM
    seed: int = 0
    max_train_examples: int | None = None  # seeded subsample of train (budget / low-resource runs)
    max_eval_examples: int | None = None  # seeded subsample of dev for per-epoch evaluation only
    max_test_examples: int | None = None  # seeded subsample of test (budget runs; reported as such)
    pico_train_from_dev: int | None = None
    fold: int = 0
    save_model: bool = True
    overwrite: bool = False
    resume: bool = False  # continue the interrupted run in `out` from its checkpoint (none there: start)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise BlurbkitError(f"--seed must be an integer from 0 to 2**32 - 1 (got {self.seed!r})")
        check_fields(self)  # the Python API's values: a string where a number goes, "false" for a bool
        if self.out is not None and str(self.out) in ("", "."):
            raise BlurbkitError(f"out {str(self.out)!r}: give a run directory (or None to keep nothing on disk)")
        for name in ("max_train_examples", "max_eval_examples", "max_test_examples", "pico_train_from_dev"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BlurbkitError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")


@dataclass(frozen=True)
class Hyperparams:
    lr: float | None = None  # None = the dataset's recipe (resolved once, by `resolved`)
    batch_size: int | None = None
    epochs: int | None = None
    max_length: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    # Stabilisation and layer studies (SPEC §4, train/stabilise.py)
    layer_decay: float | None = None  # layer-wise lr decay d (0.8-0.9 in the papers); None = off
    reinit_layers: int = 0  # re-initialise the top k encoder blocks before fine-tuning
    freeze_lower_half: bool = False  # fix the embeddings and the lower half of the blocks
    drop_layers: int = 0  # pruning study: remove the top k blocks, fine-tune the rest
    # Adversarial fine-tuning (ALUM/SMART, runtime/adversarial.py); at their defaults these fields
    # stay out of a run's store key and checkpoint signature (ADDED_LATER below), so stored runs keep theirs.
    adversarial: bool = False
    adv_epsilon: float = 1e-5
    adv_steps: int = 1
    adv_step_size: float = 1e-3
    adv_alpha: float = 1.0
    adv_norm: str = "inf"  # the perturbation's ball; named in every adversarial run's key (without_added_defaults)
    # Optimisation adjustments (SPEC §4); at their defaults left out of run keys (ADDED_LATER below).
    bias_correction: bool = True  # False: Adam without bias correction (the original BERT optimizer)
    patience: int | None = None  # stop when dev has not improved for this many epochs (best epoch kept)
    min_epochs: int | None = None  # early stopping never ends a run before this epoch (longer training: not shorter)
    final_on_train_dev: bool = False  # after choosing the epoch count on dev, retrain on train+dev; test that
    # With final_on_train_dev: train+dev for as many optimizer steps as the chosen model took, not
    # for its epoch count (the default: each record as often, so more steps).
    final_steps: bool = False
    # True: score the last epoch's weights (a fixed-epoch recipe: the epoch count is the grid's
    # choice on dev), not the best dev epoch's of this run (the default, the stability paper's).
    last_epoch: bool = False

    def __post_init__(self) -> None:
        # Values wrong whatever the model: one line before any data is read or model built. (Unset
        # values are None, so 0 is never read as "the recipe's".)
        check_fields(self)
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise BlurbkitError(f"--lr must be a positive number (got {self.lr})")
        for name, least in (("batch_size", 1), ("epochs", 1), ("max_length", MIN_LENGTH)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise BlurbkitError(f"--{name.replace('_', '-')} must be at least {least} (got {value})")
        if not (math.isfinite(self.warmup_ratio) and 0 <= self.warmup_ratio <= 1):
            raise BlurbkitError(f"--warmup-ratio must be in [0, 1] (got {self.warmup_ratio})")
        if not (math.isfinite(self.dropout) and 0 <= self.dropout < 1):
            raise BlurbkitError(f"--dropout must be in [0, 1) (got {self.dropout})")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise BlurbkitError(f"--weight-decay must be 0 or more (got {self.weight_decay})")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise BlurbkitError(f"--layer-decay must be in (0, 1] (got {self.layer_decay})")
        if self.patience is not None and self.patience < 1:
            raise BlurbkitError(f"--patience must be at least 1 epoch (got {self.patience})")
        if self.min_epochs is not None and (self.patience is None or self.min_epochs < 1):
            raise BlurbkitError(f"--min-epochs is the first epoch early stopping may end a run: it needs --patience "
                                f"and a value of at least 1 (got {self.min_epochs})")
        if self.final_steps and not self.final_on_train_dev:
            raise BlurbkitError("--final-steps sets how long the train+dev model trains: it needs --final-on-train-dev")
        if self.last_epoch and self.patience is not None:
            raise BlurbkitError("--last-epoch scores the last epoch's weights; --patience stops at the best one: "
                                "choose one of them")
        for name in ("reinit_layers", "drop_layers"):
            if getattr(self, name) < 0:
                raise BlurbkitError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(self, name)})")

    def resolved(self, spec: Any) -> Hyperparams:
        """Every value the dataset's recipe fills in when the user left it unset."""
        epochs = self.epochs or spec.recipe.epochs
        if self.min_epochs is not None and self.min_epochs > epochs:
            # Known only now (epochs may come from the recipe): a floor above the run's length means nothing.
            raise BlurbkitError(f"--min-epochs {self.min_epochs} is more than {spec.name}'s {epochs} "
                                f"epoch{'s' if epochs != 1 else ''}")
        return replace(
            self,
            lr=self.lr or spec.recipe.lr,
            batch_size=self.batch_size or spec.recipe.batch_size,
            epochs=epochs,
            max_length=self.max_length or spec.max_length,
        )


# Options that change where or how a run goes, never what it computes: a checkpoint written with other
# values of these still continues the run (train/run.py), and a run's store key leaves them out
# (experiments/run_records.py). A new runtime setting that cannot move a single digit belongs here.
HOW_NOT_WHAT = ("out", "data", "progress", "overwrite", "resume", "checkpoint_every", "save_model",
                "eval_tokens", "threads", "encode_cache")


# Hyperparameters added after runs were stored and checkpointed: at these values (their defaults)
# they are left out of a run's store key (experiments/run_records.py) and checkpoint signature
# (train/run.py), so the runs and checkpoints made before them still match.
ADDED_LATER = {"bias_correction": True, "patience": None, "min_epochs": None, "final_on_train_dev": False,
               "final_steps": False,
               "adversarial": False, "adv_epsilon": 1e-5, "adv_steps": 1, "adv_step_size": 1e-3, "adv_alpha": 1.0,
               "last_epoch": False,
               # torch.compile fuses kernels and may reorder reductions: it can move last digits, so
               # a compiled run has a key of its own (an eager one keeps the key it always had).
               "compile": False}


def without_added_defaults(options: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in options.items() if not (k in ADDED_LATER and v == ADDED_LATER[k]) and k != "adv_norm"}
    if options.get("adversarial"):
        # Every adversarial run names its ball and that its term runs in fp32 (runtime/adversarial.py
        # Adversary.loss): runs made before computed it under the run's autocast (bf16 on CPUs that
        # have it, where the term was rounding noise), and must not be taken for these.
        kept["adv_norm"] = options.get("adv_norm", "l2")
        kept["adv_term"] = "fp32"
    return kept


@dataclass(frozen=True)
class ModelChoices:
    transform: str | None = None  # None = the task type's default part
    featurizer: str | None = None
    head: str | None = None
    scheme: str | None = None  # NER/PICO tagging scheme the model learns (bio, bioul, io); None = native
    part_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)
        if not isinstance(self.part_options, dict):
            raise BlurbkitError(f"part_options must be a dict of option: value, not {self.part_options!r}")


_PARTS = {"run": RunSpec, "hyper": Hyperparams, "choices": ModelChoices, "runtime": RuntimeSettings}
_OWNER = {f.name: part for part, cls in _PARTS.items() for f in fields(cls)}


class FinetuneConfig:
    """The four parts of a run, built from flat options (each option belongs to exactly one part)."""

    __slots__ = tuple(_PARTS)

    def __init__(self, dataset: str, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OWNER))
        if unknown:
            raise BlurbkitError(f"unknown fine-tuning option(s): {', '.join(unknown)} (known: {', '.join(sorted(_OWNER))})")
        by_part: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
        for name, value in {"dataset": dataset, **options}.items():
            by_part[_OWNER[name]][name] = value
        for part, cls in _PARTS.items():
            object.__setattr__(self, part, cls(**by_part[part]))

    @staticmethod
    def option_names() -> list[str]:
        return sorted(_OWNER)

    def __getattr__(self, name: str) -> Any:
        part = _OWNER.get(name)
        if part is None:
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, part), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FinetuneConfig is immutable: use .replace(...)")

    def replace(self, **options: Any) -> FinetuneConfig:
        return FinetuneConfig(**(self.options() | options))

    def read_options(self) -> Any:
        """The reader options (data.readers.base.ReadOptions) of this run's data."""
        from blurbkit.data.readers.base import ReadOptions

        return ReadOptions(pico_train_from_dev=self.pico_train_from_dev, fold=self.fold)

    def options(self) -> dict[str, Any]:
        """The flat options this config was built from."""
        out: dict[str, Any] = {}
        for part in _PARTS:
            out.update(asdict(object.__getattribute__(self, part)))
        return out

    def to_json(self) -> dict[str, Any]:
        out = self.options()
        out["out"] = str(self.out) if self.out else None
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for worker processes
        return (_from_options, (self.options(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FinetuneConfig) and self.options() == other.options()

    def __repr__(self) -> str:
        return f"FinetuneConfig({', '.join(f'{k}={v!r}' for k, v in self.options().items())})"


def _from_options(options: dict[str, Any]) -> FinetuneConfig:
    return FinetuneConfig(**options)
