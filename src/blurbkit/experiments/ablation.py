"""Modeling-choice ablations (SPEC §3): each study is a list of named variants, each variant a
set of FinetuneConfig overrides (parts by registry name, or the tagging scheme). The grid
dataset x variant x seed runs through the Benchmark runner and the results store; the table
has rows = datasets, columns = variants, cells = test mean ± std over seeds, as in the papers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import get_dataset, original_text_datasets
from blurbkit.tasks.types import TASK_TYPES
from blurbkit.train.config import FinetuneConfig


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]
    needs_original: bool = False  # entity markers / original text: unmasked sentence + offsets
    epochs_scale: int = 1  # longer training (stability studies): the budget's epochs times this
    # The search study (experiments/search_study.py): lr, batch size and epochs come from the dev-selected
    # grid, not the recipe; `test_overrides` apply to its test runs only (not its selection runs).
    searched: bool = False
    test_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    requires: tuple[str, ...]  # what a dataset's task type must provide (as Figure 2 parts declare it)
    datasets: tuple[str, ...]  # default datasets
    variants: tuple[Variant, ...]
    # The papers' cells beside ours: source (model, paper) -> variant -> dataset -> test score, as
    # printed in the paper (its own precision: BERT-RE gives one decimal).
    published: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    published_note: str = ""


def _relation_variants() -> tuple[Variant, ...]:
    inputs = {"dummy": "text", "markers": "markers", "original": "original"}
    encodings = {"cls": "cls", "mention": "mention_pool", "start": "entity_start"}
    return tuple(
        Variant(f"{i}+{e}", {"transform": transform, "featurizer": featurizer}, needs_original=i != "dummy")
        for i, transform in inputs.items()
        for e, featurizer in encodings.items()
    )


def _sll_variants() -> tuple[Variant, ...]:
    variants = [Variant("cls", {"featurizer": "cls"})]
    for kind in ("attention", "lstm", "bilstm"):
        variants.append(Variant(f"cls+{kind}", {"featurizer": f"sll_{kind}"}))
        variants.append(Variant(kind, {"featurizer": f"sll_{kind}_nocls"}))
    return tuple(variants)


# BERT-RE's relation F1 with each last-layer summary (SPEC §8; its PPI column is experiments/cv.py's).
_BERT_RE_SLL: dict[str, dict[str, dict[str, str]]] = {
    "BioBERT": {"cls": {"ddi": "79.0", "chemprot": "75.3"}, "cls+lstm": {"ddi": "79.5", "chemprot": "76.0"},
                "cls+bilstm": {"ddi": "79.6", "chemprot": "75.9"}, "cls+attention": {"ddi": "80.5", "chemprot": "76.3"},
                "attention": {"ddi": "78.6", "chemprot": "75.4"}},
    "PubMedBERT": {"cls": {"ddi": "82.3", "chemprot": "77.3"}, "cls+attention": {"ddi": "83.5", "chemprot": "77.9"}},
}


STUDIES: dict[str, Study] = {
    study.name: study
    for study in (
        Study("tagging", "NER tagging scheme", ("token",), ("bc5chem", "ncbi_disease"),
              tuple(Variant(s, {"scheme": s}) for s in ("bio", "bioul", "io"))),
        Study("heads", "token classification layer", ("token",), ("bc5chem", "ncbi_disease"),
              tuple(Variant(n, {"head": h}) for n, h in
                    (("linear", "softmax"), ("bilstm", "bilstm"), ("crf", "crf"), ("bilstm+crf", "bilstm_crf")))),
        Study("relation", "relation input x relation encoding", ("entity_pair",), ("chemprot", "ddi"),
              _relation_variants(),
              # PubMedBERT paper, full data (SPEC §3): the published finding to reproduce in direction.
              {"PubMedBERT": {"dummy+cls": {"chemprot": "77.24", "ddi": "82.36"},
                              "original+cls": {"chemprot": "50.5", "ddi": "37.0"}}},
              "PubMedBERT-base, full data, the PubMedBERT paper's input comparison (SPEC §3)."),
        Study("sll", "SLL heads: summaries of the last layer", ("sequence",), ("chemprot", "ddi", "gad"),
              _sll_variants(), _BERT_RE_SLL,
              "BERT-RE (Tables 2, 5 and 7; SPEC §8), full data: BioBERT-base and PubMedBERT-base; the paper's "
              "'SLL X' concatenates [CLS] (cls+X here), 'no [CLS]' is X alone. The paper has no GAD column."),
        # The BLURB recipe cross-encodes a pair; sentence-embedding encoders were trained as bi-encoders.
        Study("pair", "sentence pairs: joint encoding (cross-encoder) vs each sentence alone (bi-encoder)",
              ("text_pair",), ("biosses",),
              (Variant("joint+cls", {"featurizer": "cls"}), Variant("joint+mean", {"featurizer": "mean"}),
               Variant("siamese+cosine", {"featurizer": "siamese_mean", "head": "cosine"}))),
    )
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise BlurbkitError(f"unknown study {name!r} (one of {', '.join(STUDIES)})")
    return STUDIES[name]


def select_variants(study: Study, names: str | None) -> list[Variant]:
    if not names:
        return list(study.variants)
    known = {v.name: v for v in study.variants}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise BlurbkitError(f"study {study.name}: no variant named in {names!r} (known: {', '.join(known)})")
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise BlurbkitError(f"study {study.name}: unknown variants {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in wanted]


def build_grid(
    study: Study,
    datasets: Sequence[str],
    variants: Sequence[Variant],
    seeds: int,
    make_config: Callable[[str, int], FinetuneConfig],
) -> tuple[list[tuple[str, FinetuneConfig]], dict[tuple[str, str], str]]:
    """(variant name, config) for every dataset x variant x seed, and the cells that cannot run
    ((dataset, variant) -> why). A dataset of another task type is an error before any run."""
    for name in datasets:
        task = get_dataset(name).task
        missing = [need for need in study.requires if need not in task.provides]
        if missing:
            fitting = [t for t in TASK_TYPES.names() if all(need in TASK_TYPES.get(t).provides for need in study.requires)]
            raise BlurbkitError(f"study {study.name} applies to {', '.join(fitting)} datasets; {name} is {task.name}")
    grid: list[tuple[str, FinetuneConfig]] = []
    skipped: dict[tuple[str, str], str] = {}
    for name in datasets:
        runnable = []
        for variant in variants:
            if variant.needs_original and not get_dataset(name).original_text:
                skipped[(name, variant.name)] = "masked text only in this distribution"
            else:
                runnable.append(variant)
        # Seed-major: every variant has a first result before any gets a second one.
        for seed in range(seeds):
            grid.extend((v.name, own_part_options(make_config(name, seed).replace(**v.overrides))) for v in runnable)
    check_options_read(set(make_config(datasets[0], 0).choices.part_options) if datasets else set(), grid)
    return grid, skipped


def own_part_options(config: FinetuneConfig) -> FinetuneConfig:
    """A variant's config with only the --part-option values its featurizer and head read: a study
    varies the parts, so `lstm_hidden=256` sizes the LSTM variants and means nothing to the others."""
    options = config.choices.part_options
    if not options:
        return config
    read = parts_read(config)
    return config.replace(part_options={k: v for k, v in options.items() if k in read})


def parts_read(config: FinetuneConfig) -> set[str]:
    from blurbkit.models.build import part_option_names
    from blurbkit.models.featurizers import FEATURIZERS
    from blurbkit.models.heads import HEADS

    task = get_dataset(config.dataset).task
    choices = config.choices
    return (part_option_names(FEATURIZERS.get(choices.featurizer or task.featurizer))
            | part_option_names(HEADS.get(choices.head or task.head)))


def check_options_read(given: set[str], grid: Sequence[tuple[str, FinetuneConfig]]) -> None:
    """A --part-option that no variant of the grid reads (a typo) is refused, not dropped everywhere."""
    used = {key for _, config in grid for key in config.choices.part_options}
    unread = sorted(given - used)
    if unread:
        raise BlurbkitError(f"part option(s) {', '.join(unread)} read by no featurizer or head of this study")


def check_no_conflict(study: Study, config: FinetuneConfig) -> None:
    """A CLI option naming the very part the study varies would be silently overridden."""
    varied = {key for variant in study.variants for key in variant.overrides}
    clashing = [key for key in sorted(varied) if getattr(config, key) is not None]
    if clashing:
        raise BlurbkitError(f"--{clashing[0].replace('_', '-')} is what study {study.name} varies; leave it out")


def ablation_table(
    study: Study,
    summary: dict[str, dict[str, dict[str, Any]]],
    datasets: Sequence[str],
    variants: Sequence[Variant],
    skipped: dict[tuple[str, str], str],
    budget: str,
    failed: dict[str, dict[str, int]] | None = None,
) -> str:
    """Rows = datasets, columns = variants, cells 'mean ± std' (test, %), n/a where a variant cannot run;
    `failed` (variant -> dataset -> count, benchmark.failed_runs) is counted in the cells."""
    names = [v.name for v in variants]
    lines = [f"| dataset | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    reasons = sorted(set(skipped.values()))
    for dataset in datasets:
        cells = []
        for variant in names:
            cell = summary.get(variant, {}).get(dataset)
            lost = (failed or {}).get(variant, {}).get(dataset, 0)
            if cell:
                cells.append(f"{cell['mean']:.2f} ± {cell['std']:.2f}" + (f" ({lost} failed)" if lost else ""))
            elif lost:
                cells.append(f"— ({lost} failed)")
            elif (dataset, variant) in skipped:
                cells.append(f"n/a{'*' * (1 + reasons.index(skipped[(dataset, variant)]))}")
            else:
                cells.append("—")
        lines.append(f"| {get_dataset(dataset).title} | {' | '.join(cells)} |")
    for dataset in datasets:
        for source, scores in published_rows(study, dataset, names):
            row = " | ".join(p or "" for p in scores)
            lines.append(f"| *{get_dataset(dataset).title}, {source} (published)* | {row} |")
    seeds = sorted({cell["n"] for per in summary.values() for cell in per.values()})
    lines.append("")
    lines.append(f"Study {study.name} ({study.title}): test score (%), mean ± sample std over {'/'.join(map(str, seeds)) or 0} seeds.")
    for index, reason in enumerate(reasons):
        lines.append(f"{'*' * (index + 1)} n/a: {reason} (needs the unmasked sentence and entity offsets: {', '.join(original_text_datasets())}).")
    if study.published_note and any(published_rows(study, d, names) for d in datasets):
        lines.append(f"Published rows: {study.published_note}")
    if budget != "full":
        lines.append(f"BUDGET RUN ({budget}): small training subsets and few epochs; compare directions, not values.")
    return "\n".join(lines)


def published_rows(study: Study, dataset: str, variants: Sequence[str]) -> list[tuple[str, list[str | None]]]:
    """(source, the source's score per variant) for each source with a published cell of this dataset
    among these variants."""
    rows = []
    for source, per_variant in study.published.items():
        cells = [per_variant.get(v, {}).get(dataset) for v in variants]
        if any(p is not None for p in cells):
            rows.append((source, cells))
    return rows


def flat_cells(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """'dataset variant' -> cell, for train/report.py's CSV and plot."""
    return {f"{dataset} {variant}": cell for variant, per in summary.items() for dataset, cell in per.items()}

