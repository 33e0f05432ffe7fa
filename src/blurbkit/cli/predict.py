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
    from blurbkit.fileio import atomic_write, read_jsonl, read_lines
    from blurbkit.inference.predictor import Predictor

    if args.input.suffix == ".jsonl":
        inputs = read_jsonl(args.input)
    else:
        inputs = [line for line in read_lines(args.input) if line.strip()]
    if not inputs:
        raise BlurbkitError("no inputs", path=args.input)
    predictor = Predictor.load(args.model, progress=True)
    outputs = predictor.predict(inputs)
    lines = [json.dumps({"input": i, "prediction": o}, ensure_ascii=False) + "\n" for i, o in zip(inputs, outputs, strict=True)]
    if args.out:
        with atomic_write(args.out) as handle:
            handle.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    return 0
