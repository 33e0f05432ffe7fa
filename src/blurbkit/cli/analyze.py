"""`blurbkit analyze attention RUN_DIR`: the words an SLL attention head weights most near the entities."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from blurbkit.cli.argtypes import non_negative_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("analyze", help="analyse a fine-tuned run (SLL attention weights)")
    kinds = parser.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    attention = kinds.add_parser(
        "attention",
        help="stemmed words with the largest average attention near the entities, and an HTML view",
        description="Loads RUN_DIR/model (fine-tuned with --featurizer sll_attention[_nocls]), runs the run's "
        "test records, prints the stems with the largest mean attention weight within --window words "
        "of the entities, and writes a highlighted HTML view of a few examples.",
    )
    attention.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    attention.add_argument("--data", help="data folder (default: the one the run used)")
    attention.add_argument("--window", type=non_negative_int, default=3, help="words on each side of an entity (default 3)")
    attention.add_argument("--top", type=positive_int, default=20, help="stems to list (default 20)")
    attention.add_argument("--min-count", type=positive_int, default=5, help="ignore stems seen fewer times (default 5)")
    attention.add_argument("--examples", type=non_negative_int, default=8, help="examples in the HTML view (default 8)")
    attention.add_argument("--max-examples", type=positive_int, help="analyse only the first N test records")
    attention.add_argument("--out", type=Path, help="HTML file (default: RUN_DIR/analysis/attention.html)")
    attention.set_defaults(func=run_attention_analysis)


def _test_records(run_dir: Path, data: str | None) -> tuple[str, list[dict]]:
    """The run's own test records: same data, options and seeded subsample as when it was scored."""
    from blurbkit.data.load import load_split, subsample
    from blurbkit.data.readers.base import ReadOptions
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import read_json
    from blurbkit.train.splits import EVAL_SUBSAMPLE_SEED

    if not (run_dir / "run.json").is_file():
        raise BlurbkitError("not a run directory (no run.json)", path=run_dir)
    run = read_json(run_dir / "run.json")
    config = run.get("config") if isinstance(run, dict) else None
    if not isinstance(config, dict) or "dataset" not in config:
        raise BlurbkitError("run.json has no config.dataset", path=run_dir / "run.json")
    options = ReadOptions(pico_train_from_dev=config.get("pico_train_from_dev"), fold=config.get("fold", 0))
    records = load_split(config["dataset"], "test", data or config.get("data"), options)
    return config["dataset"], subsample(records, config.get("max_test_examples"), EVAL_SUBSAMPLE_SEED)


def run_attention_analysis(args: argparse.Namespace) -> int:
    from blurbkit.analysis.attention import run_attention, top_stems, write_html
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import check_writable
    from blurbkit.models.model import BlurbModel
    from blurbkit.tasks.registry import get_dataset

    if not args.run_dir.is_dir():
        raise BlurbkitError("not a run directory" if args.run_dir.exists() else "run directory not found", path=args.run_dir)
    if not (args.run_dir / "model").is_dir():
        raise BlurbkitError("the run kept no model (it was run with --no-save-model / without --save-models)", path=args.run_dir)
    out = args.out or args.run_dir / "analysis" / "attention.html"
    check_writable(out, "HTML view", file=True)  # before the model runs, not after the table is printed
    dataset, records = _test_records(args.run_dir, args.data)
    if args.max_examples is not None:
        records = records[: args.max_examples]
    model, tokenizer = BlurbModel.load(args.run_dir / "model")
    spec = get_dataset(dataset)
    codec = spec.task.saved_codec(model.recipe.labels, model.recipe.scheme)
    analysed = run_attention(model, tokenizer, records, codec)
    rows = top_stems(analysed, args.window, args.min_count, args.top)
    print(f"{spec.title}: {len(analysed)} test examples; stems within {args.window} words of the entities, "
          f"by mean attention weight (min {args.min_count} occurrences)")
    print("| rank | stem | word | mean weight | occurrences |\n|---|---|---|---|---|")
    for rank, (stem, weight, count, form) in enumerate(rows, start=1):
        print(f"| {rank} | {stem} | {form} | {weight:.4f} | {count} |")
    negative = spec.negative_label
    shown = [a for a in analysed if a.gold != negative] or list(analysed)
    write_html(out, shown[: args.examples], f"SLL attention, {spec.title} ({args.run_dir.name})")
    print(json.dumps({"html": str(out), "examples": len(analysed), "stems": len(rows)}))
    return 0
