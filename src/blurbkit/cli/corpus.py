"""`blurbkit corpus build|select|terms`: pretraining corpora and sub-domain selection."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from blurbkit.cli.argtypes import at_least, non_negative_int, positive_int
from blurbkit.errors import BlurbkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("corpus", help="build a clean pretraining corpus; select a sub-domain corpus")
    sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION")

    build = sub.add_parser("build", help="read, normalise, sentence-split, dedupe and test-filter text into one corpus file")
    build.add_argument("inputs", nargs="+", help="files or folders (.jsonl .json .csv .PubTator .rel .txt, gzip or not)")
    build.add_argument("--out", required=True, help="output: .jsonl.gz (default choice) / .jsonl / .txt / .txt.gz")
    build.add_argument("--data", default=None, help="raw BLURB data folder (as distributed, not a prepared directory) whose test splits are excluded (default: $BLURBKIT_DATA, else ../shared/data)")
    build.add_argument("--no-test-filter", action="store_true", help="do not drop documents found in BLURB test splits")
    build.add_argument("--min-words", type=non_negative_int, default=20, help="drop documents with fewer words (default 20)")
    build.add_argument("--window", type=at_least(5), default=10,
                       help="words per overlap window (default 10; at least 5: shorter windows match common phrases)")
    build.add_argument("--min-windows", type=non_negative_int, default=2,
                       help="drop a document sharing this many distinct windows with a test split (default 2; 0 = off)")
    build.add_argument("--limit", type=positive_int, default=None, help="stop after this many kept documents")
    build.add_argument("--report", default=None, help="where to write the JSON report (default OUT.report.json)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    select = sub.add_parser("select", help="keep the documents about a topic (sub-domain adaptation corpus)")
    select.add_argument("--corpus", nargs="+", required=True, help="corpus files or folders")
    select.add_argument("--topic", required=True, help="drug | protein | chemical+protein | chemical | a terms file (one term a line)")
    select.add_argument("--out", required=True, help="output corpus (.jsonl.gz / .txt ...)")
    select.add_argument("--min-hits", type=positive_int, default=3, help="term occurrences a document needs (default 3)")
    select.add_argument("--min-distinct", type=positive_int, default=2, help="distinct terms a document needs (default 2)")
    select.add_argument("--report", default=None, help="where to write the JSON report (default OUT.report.json)")
    select.set_defaults(func=run_select)

    terms = sub.add_parser("terms", help="build a topic term list from BLURB training-set entity mentions")
    terms.add_argument("--topic", required=True, help="drug | protein | chemical | chemical+protein")
    terms.add_argument("--data", default=None, help="raw BLURB data folder, as distributed (default: $BLURBKIT_DATA, else ../shared/data)")
    terms.add_argument("--out", required=True, help="terms file to write (one term a line)")
    terms.set_defaults(func=run_terms)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _report_path(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    return Path(args.report) if args.report else out.with_name(out.name + ".report.json")


def _check_outputs(args: argparse.Namespace, inputs: list[str], report: bool = True) -> None:
    """Inputs found and outputs writable before any reading: a typo is one line, not minutes later."""
    from blurbkit.fileio import check_writable
    from blurbkit.pretrain.corpus import corpus_files
    from blurbkit.pretrain.corpus_build import check_not_an_input

    corpus_files(inputs)
    check_not_an_input(args.out, inputs)
    check_writable(args.out, "--out file", file=True)
    if report:
        check_not_an_input(_report_path(args), [*inputs, args.out])  # the report never replaces a corpus
        check_writable(_report_path(args), "report file", file=True)


def run_build(args: argparse.Namespace) -> int:
    from blurbkit.data.load import default_data
    from blurbkit.fileio import write_json
    from blurbkit.pretrain.corpus_build import build_corpus
    from blurbkit.pretrain.testsets import build_test_index

    _check_outputs(args, args.inputs)
    index = None
    if not args.no_test_filter:
        data = Path(args.data).expanduser() if args.data else default_data()
        if not data.is_dir():  # datasets added with `datasets add` would still be read: a typo here must not pass
            raise BlurbkitError("data folder not found (the BLURB test splits to filter out are read from it)", path=data)
        index = build_test_index(data, window=args.window)
    report = build_corpus(args.inputs, args.out, test_index=index, min_words=args.min_words,
                          min_windows=args.min_windows, limit=args.limit, progress=not args.no_progress)
    write_json(_report_path(args), report)
    print(json.dumps({k: report[k] for k in ("documents_read", "documents_kept", "sentences_kept", "words_kept", "dropped")}))
    print(f"wrote {args.out} and {_report_path(args)}")
    return 0


def run_select(args: argparse.Namespace) -> int:
    from blurbkit.fileio import write_json
    from blurbkit.pretrain.select import select_corpus, topic_parts

    parts = topic_parts(args.topic)
    _check_outputs(args, args.corpus)
    terms = [term for part in parts for term in part]
    report = select_corpus(args.corpus, args.out, terms, min_hits=args.min_hits, min_distinct=args.min_distinct,
                           every_part=parts if len(parts) > 1 else ())
    report["topic"] = args.topic
    write_json(_report_path(args), report)
    print(f"kept {report['documents_kept']} of {report['documents_read']} documents "
          f"({100.0 * report['documents_kept'] / max(1, report['documents_read']):.1f}%, "
          f"{report['words_kept']} words) about {args.topic!r} using {report['terms']} terms; wrote {args.out}")
    return 0


def run_terms(args: argparse.Namespace) -> int:
    from blurbkit.data.load import default_data
    from blurbkit.pretrain.select import MIN_ENTITY_RATE, TOPIC_SOURCES, terms_from_training_data, write_terms

    if args.topic not in TOPIC_SOURCES:
        raise BlurbkitError(f"unknown topic {args.topic!r} (known: {', '.join(TOPIC_SOURCES)})")
    from blurbkit.fileio import check_writable

    check_writable(args.out, "--out file", file=True)
    terms, counts = terms_from_training_data(args.topic, args.data or default_data())
    write_terms(args.out, terms, f"topic {args.topic}: entity mentions of {counts}, each annotated in at least "
                f"{MIN_ENTITY_RATE:.0%} of its occurrences in the training text")
    print(f"wrote {len(terms)} terms to {args.out} (from {counts})")
    return 0
