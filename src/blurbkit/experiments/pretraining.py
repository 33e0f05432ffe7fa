"""The pretraining-settings study (stability paper, Table 2): one preset pretrained from scratch under
four settings at **equal compute**, each encoder then fine-tuned on BLURB datasets x seeds.

Settings (columns): ``standard`` = BERT's MLM + NSP over segment pairs (``mlm_nsp``); ``mlm-only``
= MLM over the same segment pairs without the NSP loss (``mlm_pairs``); ``mlm-single`` = MLM over
packed single sequences (``mlm``); ``electra`` = replaced-token detection with a generator of
``generator_size`` of the discriminator's width over packed single sequences (``electra``).

Equal compute: the budget is the training FLOPs of ``steps`` optimiser steps of the standard setting
(each objective's ``sequence_flops``, from the parts in ``models/flops.py``: 3 x forward over the
real tokens, the MLM head at the masked positions only).
Every setting keeps the batch size and sequence length and gets ``round(budget / its FLOPs per
step)`` steps, its FLOPs per step taken over the mean real length of the examples its layout builds
from the corpus. The three MLM settings cost nearly the same per token, so they also see about the
same tokens (single sequences are full 128-token windows, the pairs a little shorter: a few more
steps); ELECTRA also pays for its generator (encoder, embedding projection and vocabulary head), so
it gets fewer steps and fewer tokens for the same FLOPs: the ELECTRA paper's comparison.

Pretraining runs through ``pretrain.trainer.pretrain`` (the ``blurbkit pretrain`` entry point) into
``ROOT/models/SETTING-DIGEST``: a finished model is reused, an interrupted one resumes from its last
checkpoint (the trainer's own logic). Fine-tuning runs through the Benchmark runner and the results
store like every study, the model label being the pretrained directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.objectives import Objective, get_objective


@dataclass(frozen=True)
class Setting:
    name: str
    title: str  # the paper's column
    objective: str  # a pretraining objective (pretrain/objectives)
    inputs: str


SETTINGS: tuple[Setting, ...] = (
    Setting("standard", "BERT (MLM+NSP)", "mlm_nsp", "segment pairs"),
    Setting("mlm-only", "MLM only", "mlm_pairs", "segment pairs"),
    Setting("mlm-single", "MLM, single seq", "mlm", "single sequences"),
    Setting("electra", "ELECTRA", "electra", "single sequences"),
)
REFERENCE = "standard"  # whose steps define the FLOPs budget
DATASETS = ("bc5chem", "ncbi_disease", "ddi", "gad", "biosses", "pubmedqa")

# Stability paper, Table 2 (BASE models, BLURB test; SPEC §8).
_TABLE2 = {
    "bc5chem": (93.33, 93.21, 93.20, 93.00), "bc5disease": (85.62, 85.29, 85.44, 84.84),
    "ncbi_disease": (87.82, 88.29, 88.68, 87.17), "bc2gm": (84.52, 84.41, 84.63, 84.03),
    "jnlpba": (79.10, 79.01, 79.10, 78.57), "ebm_pico": (73.38, 73.87, 73.64, 73.57),
    "chemprot": (77.24, 76.82, 76.88, 76.34), "ddi": (82.36, 82.64, 82.45, 80.58),
    "gad": (83.96, 82.30, 83.24, 83.40), "biosses": (93.46, 93.12, 75.50, 80.24),
    "hoc": (82.32, 82.37, 81.91, 81.28), "pubmedqa": (55.84, 56.40, 66.66, 64.96),
    "bioasq": (87.56, 83.57, 85.64, 88.93),
}
PUBLISHED: dict[str, dict[str, float]] = {
    s.name: {dataset: row[i] for dataset, row in _TABLE2.items()} for i, s in enumerate(SETTINGS)
}


def select_settings(names: str | None) -> list[Setting]:
    if not names:
        return list(SETTINGS)
    known = {s.name: s for s in SETTINGS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise BlurbkitError(f"study pretraining: unknown variants {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in wanted]


@dataclass(frozen=True)
class Budget:
    """What every setting shares: model, corpus, vocabulary, batch, length, optimiser; `steps` are the
    standard setting's, the others' follow from its FLOPs."""

    corpus: tuple[str, ...]
    tokenizer: str
    preset: str = "mini"
    steps: int = 1000
    batch_size: int = 32
    max_length: int = 128
    lr: float = 1e-3
    warmup: float = 0.1
    mask_rate: float = 0.15
    generator_size: float = 0.25
    seed: int = 42
    max_docs: int | None = None

    def check(self) -> None:
        from blurbkit.pretrain.objectives.electra import check_generator_size

        check_generator_size(self.generator_size)  # part of every model's digest, so refused even without ELECTRA
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise BlurbkitError(f"--pretrain-{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:
            raise BlurbkitError("--pretrain-lr must be positive")


@dataclass
class Plan:
    """One setting's pretraining run: its share of the budget and where it goes."""

    setting: Setting
    steps: int
    mean_length: float  # real tokens per sequence, over the examples of its layout
    flops_per_step: float
    encoder_params: int  # what is fine-tuned (ELECTRA: the discriminator)
    generator_params: int  # ELECTRA's generator without the shared embeddings; 0 otherwise
    out: Path
    batch: int

    @property
    def sequences(self) -> int:
        return self.steps * self.batch

    @property
    def tokens(self) -> float:
        return self.sequences * self.mean_length

    @property
    def flops(self) -> float:
        return self.steps * self.flops_per_step


def _lengths(examples: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(real tokens, special tokens) of each example as the collator builds it: [CLS] a [SEP] for
    one segment, [CLS] a [SEP] b [SEP] for a pair (truncated to fit)."""
    a = examples[:, 1] - examples[:, 0]
    single = examples[:, 2] < 0
    b = np.where(single, 0, examples[:, 3] - examples[:, 2])
    special = np.where(single, 2, 3)
    return np.minimum(a + b, max_length - special) + special, special


def _flops_per_sequence(objective: Objective, config: Any, lengths: np.ndarray, special: np.ndarray,
                        mask_rate: float) -> float:
    # Attention grows with the length: average over the distinct lengths, weighted by their counts.
    pairs, counts = np.unique(np.stack([lengths, special], axis=1), axis=0, return_counts=True)
    total = sum(c * objective.sequence_flops(config, int(n), mask_rate * max(0, int(n) - int(k)))
                for (n, k), c in zip(pairs, counts, strict=True))
    return float(total / counts.sum())


def model_digest(budget: Budget, setting: Setting, steps: int, cache_meta: dict[str, Any]) -> str:
    """What makes two pretrained models the same: every budget field (the corpus by content
    signature, not path), the objective and the steps."""
    values = asdict(budget) | {"corpus": cache_meta["corpus"], "tokenizer": cache_meta["tokenizer"],
                                "objective": setting.objective, "setting_steps": steps}

    objective = get_objective(setting.objective)
    if (objective.mask_fraction, objective.random_fraction) != (0.8, 0.1):  # BERT's split keeps earlier digests
        values["corruption"] = [objective.mask_fraction, objective.random_fraction]
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]


def plan(budget: Budget, settings: Sequence[Setting], root: Path, progress: bool = True) -> list[Plan]:
    """Each setting's steps at equal FLOPs, sizes and output directory. Tokenises the corpus once
    into ROOT/data (the pretraining runs reuse that cache)."""
    from blurbkit.pretrain.config import build_config
    from blurbkit.pretrain.data import make_examples
    from blurbkit.pretrain.token_cache import build_token_cache
    from blurbkit.pretrain.vocab import load_any_tokenizer

    budget.check()
    objectives: dict[str, tuple[Setting, Objective]] = {}
    for setting in (*settings, next(s for s in SETTINGS if s.name == REFERENCE)):
        objective = get_objective(setting.objective)
        objective.configure(settings_config(budget, setting, 1, root / "models", root, progress=False))  # refuses bad options first
        objectives[setting.name] = (setting, objective)
    tokenizer = load_any_tokenizer(budget.tokenizer)
    config = build_config(budget.preset, len(tokenizer), budget.max_length, tokenizer)
    cache = build_token_cache(list(budget.corpus), tokenizer, root / "data", progress=progress, max_docs=budget.max_docs)
    per_step: dict[str, tuple[float, float, int, int]] = {}
    for setting, objective in objectives.values():
        objective.check_corpus(cache)
        examples = make_examples(cache, budget.max_length, mode=objective.example_mode(True), seed=budget.seed)
        if len(examples) == 0:
            raise BlurbkitError("the corpus is too small to make one training sequence", path=budget.corpus[0])
        lengths, special = _lengths(examples, budget.max_length)
        flops = budget.batch_size * _flops_per_sequence(objective, config, lengths, special, budget.mask_rate)
        per_step[setting.name] = (float(lengths.mean()), flops, *objective.parameter_counts(config))
    total = budget.steps * per_step[REFERENCE][1]
    plans = []
    for setting in settings:
        mean_length, flops, encoder, generator_params = per_step[setting.name]
        steps = max(1, round(total / flops))
        out = root / "models" / f"{setting.name}-{model_digest(budget, setting, steps, cache.meta)}"
        plans.append(Plan(setting, steps, mean_length, flops, encoder, generator_params, out, budget.batch_size))
    return plans


def finished(out: Path) -> bool:
    """A pretrained model directory whose run finished (not stopped by time or interrupted)."""
    try:
        summary = json.loads((out / "pretrain_summary.json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return summary.get("stopped") == "finished" and (out / "config.json").is_file()


def settings_config(budget: Budget, setting: Setting, steps: int, out: Path, root: Path, progress: bool) -> Any:
    """The PretrainConfig of one setting under the budget."""
    from blurbkit.pretrain.config import PretrainConfig

    return PretrainConfig(
        corpus=list(budget.corpus), out=str(out), tokenizer=budget.tokenizer, from_scratch=budget.preset,
        max_length=budget.max_length, batch_size=budget.batch_size, lr=budget.lr, warmup=budget.warmup,
        max_steps=steps, mask_rate=budget.mask_rate, objective=setting.objective,
        generator_size=budget.generator_size, seed=budget.seed, max_docs=budget.max_docs,
        cache_dir=str(root / "data"), save_every=max(1, min(500, steps // 5)), progress=progress)


def pretrain_config(budget: Budget, item: Plan, root: Path, progress: bool) -> Any:
    """The PretrainConfig of a planned setting."""
    return settings_config(budget, item.setting, item.steps, item.out, root, progress)


def pretrain_all(budget: Budget, plans: Sequence[Plan], root: Path, progress: bool = True,
                 log: Any = print) -> dict[str, dict[str, Any]]:
    """Pretrain every planned setting not finished before (an interrupted one resumes from its
    checkpoint); setting -> its pretrain_summary.json."""
    from blurbkit.pretrain.trainer import pretrain

    summaries = {}
    for item in plans:
        if finished(item.out):
            log(f"blurbkit: pretraining {item.setting.name}: reusing the finished model {item.out}")
        else:
            resuming = any((item.out / "checkpoints").glob("step-*"))
            log(f"blurbkit: pretraining {item.setting.name} ({item.setting.objective}): {item.steps} steps -> {item.out}"
                + (" (continuing from its last checkpoint)" if resuming else ""))
            pretrain(pretrain_config(budget, item, root, progress))
        summaries[item.setting.name] = json.loads((item.out / "pretrain_summary.json").read_text("utf-8"))
    return summaries
