"""`blurbkit predict`: run a fine-tuned model on new text, or NER + relation models on documents.

One model (``--model``), input by suffix (the default): a text file (one input a line) or .jsonl with
the task's fields -> JSON lines {"input", "prediction"}.

Documents (``--ner``/``--relations``, or ``--format pubtator|bioc``): blurbkit.Pipeline over a text
file (one document a line), .jsonl ({"id", "title", "text"}), PubTator or BioC (XML; JSON when the
file ends in .json). PubTator and BioC inputs are written back in their format with the predicted
annotations instead of the given ones; text and JSON-lines inputs give JSON lines of results.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from blurbkit.cli.serve import add_pipeline_arguments, load_pipeline

FORMATS = ("txt", "jsonl", "pubtator", "bioc")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="run a fine-tuned model (RUN_DIR/model) on new text")
    parser.add_argument("--model", type=Path, help="a fine-tuned model directory (RUN_DIR/model)")
    parser.add_argument("--input", required=True, type=Path,
                        help="text file (one input a line) or .jsonl with the task's fields (text, text_a/text_b, question/context; "
                        "a relation model reading the unmasked sentence: original {text, entities})")
    parser.add_argument("--format", choices=FORMATS,
                        help="input format (default: jsonl for .jsonl, else txt); pubtator/bioc run the document pipeline")
    parser.add_argument("--out", type=Path, help="write here (default: stdout)")
    add_pipeline_arguments(parser, ner_required=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import atomic_write, check_writable, parse_jsonl, read_lines

    if args.out:
        if args.input.exists() and args.out.resolve() == args.input.resolve():
            raise BlurbkitError("--out is the --input file: it would be replaced by the predictions; write them "
                                "somewhere else", path=args.out)
        check_writable(args.out, "--out file", file=True)  # before any model loads or predicts
    fmt = args.format or ("jsonl" if args.input.suffix == ".jsonl" else "txt")
    documents_mode = bool(args.ner or args.relations) or fmt in ("pubtator", "bioc")
    if documents_mode:
        text = predict_documents(args, fmt)
    else:
        if args.model is None:
            raise BlurbkitError("pass --model DIR (or --ner/--relations for the document pipeline)")
        pipeline_only = [flag for flag, value in (("--type-map", args.type_map), ("--relation-types", args.relation_types),
                                                  ("--keep-negative", args.keep_negative)) if value]
        if pipeline_only:
            raise BlurbkitError(f"{', '.join(pipeline_only)}: for the document pipeline (--ner/--relations), not --model")
        from blurbkit.inference.predictor import InputWarning, Predictor
        from blurbkit.tasks.types.base import InputError

        lines = read_lines(args.input)
        if fmt == "jsonl":
            numbered = list(parse_jsonl(lines, args.input))
        else:
            numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
        if not numbered:
            raise BlurbkitError("no inputs", path=args.input)
        inputs = [item for _, item in numbered]
        predictor = Predictor.load(args.model, progress=True, backend=args.backend)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InputWarning)
                outputs = predictor.predict(inputs)
        except InputError as err:  # name the input file's line, not the input's position
            raise BlurbkitError(err.problem, path=args.input, line=numbered[err.index][0]) from None
        notes = {}
        for warning in caught:
            if isinstance(warning.message, InputWarning):  # an input left without a prediction
                notes[warning.message.index] = warning.message.problem
                print(f"{args.input}:{numbered[warning.message.index][0]}: warning: {warning.message.problem}", file=sys.stderr)
            else:  # anything else is shown as Python would have shown it
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        text = "".join(json.dumps({"input": i, "prediction": o} | ({"warning": notes[n]} if n in notes else {}),
                                  ensure_ascii=False) + "\n"
                       for n, (i, o) in enumerate(zip(inputs, outputs, strict=True)))
    if args.out:
        with atomic_write(args.out) as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def predict_documents(args: argparse.Namespace, fmt: str) -> str:
    from blurbkit.data import documents as docs
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import parse_jsonl, read_lines

    ner = list(args.ner) + ([args.model] if args.model else [])
    if not ner:
        raise BlurbkitError("the document pipeline needs at least one NER model (--ner DIR or --model DIR)")
    lines: list[int] = []  # .jsonl: the file line of each document, for errors
    if fmt == "pubtator":
        inputs = docs.read_pubtator(args.input)
    elif fmt == "bioc":
        inputs = docs.read_bioc(args.input)
    elif fmt == "jsonl":
        inputs = []
        for number, obj in parse_jsonl(read_lines(args.input), args.input):
            try:
                inputs.append(docs.as_document(obj, len(inputs)))
            except docs.DocumentError as err:
                raise BlurbkitError(err.problem, path=args.input, line=number) from None
            lines.append(number)
    else:
        inputs = [docs.Document(id=str(n), text=line) for n, line in enumerate(read_lines(args.input)) if line.strip()]
    if not inputs:
        raise BlurbkitError("no documents", path=args.input)
    pipeline = load_pipeline(args, ner)
    try:
        annotated = pipeline.annotate_documents(inputs)
    except docs.DocumentError as err:  # e.g. a BioC JSON text that is not Unicode text
        if lines:
            raise BlurbkitError(err.problem, path=args.input, line=lines[err.index]) from None
        raise BlurbkitError(f"document {inputs[err.index].id}: {err.problem}", path=args.input) from None
    for document in annotated:  # what was skipped, e.g. a sentence with too many candidate pairs
        for warning in document.warnings:
            print(f"{args.input}: document {document.id}: warning: {warning}", file=sys.stderr)
    if fmt == "pubtator":
        return docs.pubtator_text(annotated)
    if fmt == "bioc":
        out = args.out if args.out is not None else args.input
        return docs.bioc_text(annotated, json_format=str(out).endswith(".json"))
    return "".join(json.dumps(_result(d), ensure_ascii=False) + "\n" for d in annotated)


def _result(document: Any) -> dict[str, Any]:
    """A JSON-lines result: as blurbkit.Pipeline returns it ("warnings" only when there are some)."""
    result = {"id": document.id, "entities": document.entities,
              "relations": [{k: v for k, v in r.items() if k not in ("type", "arg1", "arg2")} for r in document.relations]}
    if document.warnings:
        result["warnings"] = document.warnings
    return result
