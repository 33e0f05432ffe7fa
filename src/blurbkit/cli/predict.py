"""`blurbkit predict`: run a fine-tuned model on new text."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="run a fine-tuned model (RUN_DIR/model) on new text")
    parser.add_argument("--model", required=True, type=Path, help="a fine-tuned model directory (RUN_DIR/model)")
    parser.add_argument("--input", required=True, type=Path,
                        help="text file (one input a line) or .jsonl with the task's fields (text, text_a/text_b, question/context)")
    parser.add_argument("--out", type=Path, help="write JSON lines here (default: stdout)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import atomic_write, parse_jsonl, read_lines
    from blurbkit.inference.predictor import Predictor
    from blurbkit.tasks.types.base import InputError

    lines = read_lines(args.input)
    if args.input.suffix == ".jsonl":
        numbered = list(parse_jsonl(lines, args.input))
    else:
        numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise BlurbkitError("no inputs", path=args.input)
    inputs = [item for _, item in numbered]
    predictor = Predictor.load(args.model, progress=True)
    try:
        outputs = predictor.predict(inputs)
    except InputError as err:  # name the input file's line, not the input's position
        raise BlurbkitError(err.problem, path=args.input, line=numbered[err.index][0]) from None
    lines = [json.dumps({"input": i, "prediction": o}, ensure_ascii=False) + "\n" for i, o in zip(inputs, outputs, strict=True)]
    if args.out:
        with atomic_write(args.out) as handle:
            handle.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    return 0
