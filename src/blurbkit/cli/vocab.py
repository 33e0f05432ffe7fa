"""`blurbkit vocab build|compare`: train a WordPiece vocabulary; compare how two vocabularies split terms."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from blurbkit.cli.argtypes import non_negative_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("vocab", help="build a WordPiece vocabulary; compare two vocabularies")
    sub = parser.add_subparsers(dest="vocab_command", metavar="ACTION")

    build = sub.add_parser("build", help="train an uncased WordPiece vocabulary (tokenizers) on a corpus")
    build.add_argument("--corpus", nargs="+", required=True, help="corpus files or folders (any `corpus build` input format)")
    build.add_argument("--size", type=int, default=30000, help="vocabulary size (default 30000)")
    build.add_argument("--min-frequency", type=non_negative_int, default=2, help="minimum pair frequency to merge (default 2)")
    build.add_argument("--cased", action="store_true", help="keep case (default: uncased, as PubMedBERT)")
    build.add_argument("--max-sentences", type=positive_int, default=None, help="train on the first N sentences only")
    build.add_argument("--out", required=True, help="tokenizer directory to write")
    build.set_defaults(func=run_build)

    cmp = sub.add_parser("compare", help="how two tokenizers split a term list, and pieces per word over a corpus")
    cmp.add_argument("tokenizer_a", help="tokenizer or model directory, or 'default' (the default model's BERT vocabulary)")
    cmp.add_argument("tokenizer_b", help="tokenizer or model directory, or 'default'")
    cmp.add_argument("--terms", default=None, help="terms file, one a line (default: the 17 terms of PubMedBERT Table 1)")
    cmp.add_argument("--corpus", nargs="*", default=None, help="corpus files/folders for average pieces per word")
    cmp.add_argument("--max-sentences", type=positive_int, default=20000, help="sentences of the corpus to measure (default 20000)")
    cmp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cmp.set_defaults(func=run_compare)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _sentences(corpus: list[str], limit: int | None):
    from blurbkit.pretrain.corpus import iter_corpus_sentences

    stream = (s for sentences in iter_corpus_sentences(corpus) for s in sentences)
    return itertools.islice(stream, limit) if limit else stream


def run_build(args: argparse.Namespace) -> int:
    from blurbkit.pretrain.vocab import build_vocab

    info = build_vocab(_sentences(args.corpus, args.max_sentences), args.out, size=args.size,
                       min_frequency=args.min_frequency, lowercase=not args.cased,
                       source=", ".join(map(str, args.corpus)) if isinstance(args.corpus, list) else str(args.corpus))
    print(f"wrote a {info['vocab_size']}-piece WordPiece vocabulary from {info['sentences']} sentences to {args.out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from blurbkit.pretrain.vocab import compare, load_any_tokenizer, read_terms, table1_terms

    a = load_any_tokenizer(args.tokenizer_a)
    b = load_any_tokenizer(args.tokenizer_b)
    terms = read_terms(args.terms) if args.terms else table1_terms()
    sentences = list(_sentences(args.corpus, args.max_sentences)) if args.corpus else None
    result = compare(a, b, terms, sentences)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    name_a, name_b = Path(args.tokenizer_a).name or args.tokenizer_a, Path(args.tokenizer_b).name or args.tokenizer_b
    width = max(len(t) for t in terms) + 2
    col = max(30, max(len(" ".join(r["a"])) for r in result["terms"]) + 2)
    print(f"{'term':<{width}}{'A: ' + name_a + ' (' + str(result['vocab_a']) + ')':<{col}}B: {name_b} ({result['vocab_b']})")
    for row in result["terms"]:
        print(f"{row['term']:<{width}}{' '.join(row['a']):<{col}}{' '.join(row['b'])}")
    print(f"whole words: A {result['whole_a']}/{len(terms)}, B {result['whole_b']}/{len(terms)}")
    if sentences:
        ca, cb = result["corpus_a"], result["corpus_b"]
        print(f"pieces per word over {ca['words']} words: A {ca['pieces_per_word']:.3f}, B {cb['pieces_per_word']:.3f}"
              f" (unknown pieces: A {100 * ca['unknown_rate']:.2f}%, B {100 * cb['unknown_rate']:.2f}%)")
    return 0
