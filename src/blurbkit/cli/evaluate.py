"""`blurbkit evaluate`: score a prediction file on a dataset split; prints one JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from blurbkit.tasks.registry import SPLITS

SCHEME_CHOICES = ("iob2", "bio", "io", "iob1", "iobes", "bioes", "bioul")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a prediction file with the official BLURB metric",
        description="Score a prediction file against a dataset's gold split and print one JSON object. "
        "NER/PICO files: the gold token lines as 'token<TAB>predicted tag', a blank line after each "
        'sentence. Other tasks: JSON lines {"id": ..., "prediction": ...}.',
    )
    parser.add_argument("--dataset", required=True, help="dataset name (see `blurbkit datasets`)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="gold split (default: test)")
    parser.add_argument("--predictions", required=True, type=Path, help="the prediction file")
    parser.add_argument("--data", type=Path, default=None, help="prepared directory or raw data folder")
    parser.add_argument(
        "--scheme",
        choices=SCHEME_CHOICES,
        default=None,
        help="tagging scheme of predicted NER/PICO tags (default iob2, which also accepts IO tags)",
    )
    parser.add_argument("--fold", type=int, default=None, help="AIMed: the fold used as test split")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.scoring import evaluate
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset(args.dataset)
    # Options the dataset has no use for are refused, as finetune refuses them, not ignored.
    if args.fold is not None and "folds" not in spec.files:
        raise BlurbkitError(f"--fold {args.fold}: dataset {spec.name} is not split into folds")
    if args.scheme is not None and not spec.task.windowed:
        raise BlurbkitError(f"--scheme applies to token-level datasets, not to {spec.name} ({spec.task.name})")
    options = None
    if args.fold is not None:
        from blurbkit.data.readers.base import ReadOptions

        options = ReadOptions(fold=args.fold)
    result = evaluate(
        args.dataset, args.split, args.predictions, args.data, scheme=args.scheme, options=options
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0
