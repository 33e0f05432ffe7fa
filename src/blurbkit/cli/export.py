"""`blurbkit export --model DIR --format onnx [--int8] [--out DIR]`: a fine-tuned token-level model as
ONNX (and int8 dynamic quantisation) for `predict`/`serve --backend onnx|onnx-int8`; docs/serving_fast.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a fine-tuned NER/PICO model to ONNX (optionally int8)")
    parser.add_argument("--model", required=True, type=Path, help="a fine-tuned model directory (RUN_DIR/model)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    parser.add_argument("--int8", action="store_true",
                        help="also write an int8 dynamically quantised graph (faster, outputs change a little)")
    parser.add_argument("--out", type=Path, help="where to write (default: MODEL/onnx, where --backend finds it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.inference.onnx import export

    manifest = export(args.model, out=args.out, int8=args.int8)
    print(json.dumps({"out": manifest["out"], "files": manifest["files"],
                      "max_abs_score_difference_fp32": manifest["max_abs_score_difference_fp32"]}))
    return 0
