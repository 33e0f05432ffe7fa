"""`blurbkit finetune`: one dataset, one seed, one run directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from blurbkit.cli.argtypes import finite_float


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that run grids through the results store (benchmark, ablate)."""
    parser.add_argument("--quick", action="store_true", help="budget mode for a CPU: small subsets, few epochs")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories, the store and tables go")
    parser.add_argument("--store", type=Path, help="results store (default: RUNS_DIR/results.sqlite)")
    parser.add_argument("--force", action="store_true", help="re-run runs already in the store")
    parser.add_argument("--keep-going", action="store_true", help="continue past a run that fails")
    parser.add_argument("--save-models", action="store_true", help="keep each run's fine-tuned weights (for `analyze`)")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by finetune, benchmark and ablate."""
    parser.add_argument("--data", help="prepared directory or raw source folder (default: $BLURBKIT_DATA or ../shared/data)")
    parser.add_argument("--model", help="local Hugging Face model directory (default: the embedded MiniLM-L6-H384)")
    parser.add_argument("--lr", type=finite_float, help="learning rate (default: the dataset's recipe)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the dataset's recipe)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the dataset's recipe)")
    parser.add_argument("--max-length", type=int, help="maximum subword length (default: the dataset's)")
    parser.add_argument("--max-train-examples", type=int, help="train on a seeded subsample of N examples")
    parser.add_argument("--max-eval-examples", type=int, help="evaluate dev each epoch on a seeded subsample of N")
    parser.add_argument("--max-test-examples", type=int, help="score test on a seeded subsample of N (a budget run, said in every output)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="autocast precision; auto = bf16 where the hardware has it (default)")
    parser.add_argument("--transform", help="TransformInput part by name (default: the task's)")
    parser.add_argument("--featurizer", help="Featurizer part by name (default: the task's)")
    parser.add_argument("--head", help="Predict head by name (default: the task's)")
    parser.add_argument("--layer-decay", type=finite_float, metavar="D", help="layer-wise lr decay: block l from the top gets lr*D**l")
    parser.add_argument("--reinit-layers", type=int, default=0, metavar="K", help="re-initialise the top K encoder blocks")
    parser.add_argument("--freeze-lower-half", action="store_true", help="fix the embeddings and the lower half of the blocks")
    parser.add_argument("--drop-layers", type=int, default=0, metavar="K", help="pruning study: remove the top K blocks")
    add_adversarial_options(parser, "adversarial fine-tuning (ALUM)", alpha=1.0)
    parser.add_argument("--no-bias-correction", action="store_true",
                        help="Adam without bias correction (BERT's original optimizer; default: corrected AdamW)")
    parser.add_argument("--patience", type=int, metavar="N",
                        help="early stopping: stop when dev has not improved for N epochs (the best epoch is kept)")
    parser.add_argument("--min-epochs", type=int, metavar="N",
                        help="with --patience: early stopping never ends the run before epoch N")
    parser.add_argument("--last-epoch", action="store_true",
                        help="score the last epoch's weights (a fixed-epoch recipe), not the best dev epoch's "
                        "(the default)")
    parser.add_argument("--final-on-train-dev", action="store_true",
                        help="after dev chooses the epoch count, retrain from the pretrained encoder on train+dev "
                        "for that many epochs (with --last-epoch: every epoch of the recipe) and score that model on test")
    parser.add_argument("--final-steps", action="store_true",
                        help="with --final-on-train-dev: train+dev for as many optimizer steps as the chosen model "
                        "took, not its epoch count (each record seen fewer times)")
    parser.add_argument("--scheme", choices=["bio", "bioul", "io"], help="NER/PICO: tagging scheme the model learns")
    parser.add_argument("--part-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option passed to the featurizer/head (repeatable), e.g. lstm_hidden=256")
    parser.add_argument("--pico-train-from-dev", type=int, metavar="N",
                        help="EBM PICO only: carve N dev abstracts into train (a LOCAL DEVIATION from BLURB)")
    parser.add_argument("--fold", type=int, default=0, help="AIMed: which of the 10 folds is test")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="also checkpoint every N optimizer steps (a run with --out always checkpoints at each epoch's end)")


def parse_part_options(items: list[str], flag: str = "--part-option") -> dict[str, object]:
    import json

    from blurbkit.errors import BlurbkitError

    options: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BlurbkitError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def study_config(args: argparse.Namespace, dataset: str, seed: int, **changes: Any) -> Any:
    """One run of a study or benchmark: the command's options for `dataset` and `seed`, `changes`
    on top, then the --quick budget's data sizes and epochs when --quick is given."""
    from blurbkit.experiments.benchmark import apply_budget, budget_profile

    config = config_from_args(args, dataset, seed, None)
    if changes:
        config = config.replace(**changes)
    return apply_budget(config, budget_profile("quick", dataset)) if args.quick else config


def config_from_args(args: argparse.Namespace, dataset: str, seed: int, out: Path | None):
    from blurbkit.train.config import FinetuneConfig

    return FinetuneConfig(
        dataset=dataset,
        out=out,
        data=args.data,
        model=args.model,
        seed=seed,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_length=args.max_length,
        max_train_examples=args.max_train_examples,
        max_eval_examples=args.max_eval_examples,
        max_test_examples=args.max_test_examples,
        precision=args.precision,
        transform=args.transform,
        featurizer=args.featurizer,
        head=args.head,
        scheme=args.scheme,
        layer_decay=args.layer_decay,
        reinit_layers=args.reinit_layers,
        freeze_lower_half=args.freeze_lower_half,
        drop_layers=args.drop_layers,
        **adversarial_settings(args),
        bias_correction=not args.no_bias_correction,
        patience=args.patience,
        min_epochs=args.min_epochs,
        final_on_train_dev=args.final_on_train_dev,
        final_steps=args.final_steps,
        last_epoch=args.last_epoch,
        part_options=parse_part_options(args.part_option),
        pico_train_from_dev=args.pico_train_from_dev,
        fold=args.fold,
        progress=not args.no_progress,
        checkpoint_every=args.checkpoint_every,
        resume=getattr(args, "resume", False),
        overwrite=getattr(args, "overwrite", False),
        save_model=not getattr(args, "no_save_model", False),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("finetune", help="fine-tune an encoder on one dataset and score it on test")
    parser.add_argument("--dataset", required=True, help="dataset name (see `blurbkit datasets`)")
    parser.add_argument("--out", required=True, type=Path, help="run directory to create")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --out from its checkpoint")
    parser.add_argument("--no-save-model", action="store_true", help="do not keep the fine-tuned weights")
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.train.run import run_finetune

    metrics = run_finetune(config_from_args(args, args.dataset, args.seed, args.out))
    test = metrics["test"]
    summary = {k: test[k] for k in ("dataset", "metric", "score", "precision", "recall") if k in test}
    summary.update(best_epoch=metrics["best_epoch"], dev_score=metrics["dev"]["score"], run_dir=str(args.out))
    print(json.dumps(summary))
    return 0


def add_adversarial_options(parser: argparse.ArgumentParser, what: str, alpha: float) -> None:
    """--adversarial and its settings (runtime/adversarial.py), shared by finetune and pretrain.
    The settings default to None here (`adversarial_settings` fills the defaults), so one given
    without --adversarial is refused instead of ignored."""
    parser.add_argument("--adversarial", action="store_true",
                        help=f"{what}: perturb the token embeddings, add the symmetric KL to the loss")
    parser.add_argument("--adv-epsilon", type=finite_float, default=None, help="--adversarial: per-token radius (default 1e-5)")
    parser.add_argument("--adv-norm", choices=["inf", "l2"], default=None,
                        help="--adversarial: the radius bounds every coordinate (inf, ALUM's; default) or each token's L2 norm")
    parser.add_argument("--adv-steps", type=int, default=None, help="--adversarial: ascent steps (default 1)")
    parser.add_argument("--adv-step-size", type=finite_float, default=None, help="--adversarial: ascent step size (default 1e-3)")
    parser.add_argument("--adv-alpha", type=finite_float, default=None, help=f"--adversarial: weight of the KL term (default {alpha:g})")
    parser.set_defaults(adv_alpha_default=alpha)


def adversarial_settings(args: argparse.Namespace) -> dict[str, object]:
    """adversarial + adv_* for a config: the defaults where not given; one line for an adv_*
    option without --adversarial (it would be ignored) or a value that is not a finite number."""
    import math

    from blurbkit.errors import BlurbkitError

    defaults = {"adv_epsilon": 1e-5, "adv_norm": "inf", "adv_steps": 1, "adv_step_size": 1e-3,
                "adv_alpha": args.adv_alpha_default}
    given = {name: getattr(args, name) for name in defaults if getattr(args, name) is not None}
    if given and not args.adversarial:
        raise BlurbkitError(f"{', '.join('--' + n.replace('_', '-') for n in given)}: only with --adversarial")
    for name, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise BlurbkitError(f"--{name.replace('_', '-')} {value}: not a finite number")
    return {"adversarial": args.adversarial, **defaults, **given}
