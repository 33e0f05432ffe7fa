"""`blurbkit probe`: layer probing with scalar mixing on a frozen encoder (BERT-RE paper, Fig. 1/4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from blurbkit.cli.argtypes import positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="layer probing: what each encoder layer adds for a sequence task (frozen encoder, scalar mix)",
        description="Freezes the encoder, computes every layer's pooled output once, then trains a probe per "
        "depth l = 0..L (softmax-weighted scalar mix of layers 0..l, a scale, an MLP, the task's head), chooses "
        "its epoch on dev and scores test with the official metric. Prints score(l), Delta_l = score(l) - "
        "score(l-1) and the mix weights of the full-depth probe; writes md, csv, json and a plot to --out and one row "
        "per probe to the results store (for `blurbkit report`).",
    )
    parser.add_argument("--dataset", help="a sequence-level dataset (relation: chemprot, ddi, gad, aimed; hoc, ...)")
    parser.add_argument("--model", help="local encoder directory (default: the embedded MiniLM-L6-H384)")
    parser.add_argument("--data", help="prepared directory or raw source folder (default: $BLURBKIT_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, help="output directory (default: runs/probe/DATASET-MODEL)")
    parser.add_argument("--pool", choices=["cls", "mean"], default="cls",
                        help="per-layer vector: the [CLS] position (default) or the mean over the text's tokens")
    parser.add_argument("--seeds", type=int, default=3, help="probe seeds per depth (default 3)")
    parser.add_argument("--epochs", type=int, default=20, help="probe training epochs; the best on dev is kept (default 20)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="probe learning rate, Adam (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=64, help="probe batch size (default 64)")
    parser.add_argument("--mlp-size", type=int, default=256, help="hidden units of the probe's MLP (default 256)")
    parser.add_argument("--max-length", type=int, help="maximum subword length (default: the dataset's)")
    parser.add_argument("--max-train-examples", type=int, help="probe on a seeded subsample of N train records")
    parser.add_argument("--max-eval-examples", type=int, help="choose epochs on a seeded subsample of N dev records")
    parser.add_argument("--max-test-examples", type=int, help="score test on a seeded subsample of N records (a budget run)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="autocast for the encoder's forward pass (default auto: bf16 where native)")
    parser.add_argument("--store", type=Path, default=Path("runs") / "results.sqlite",
                        help="results store for one row per probe (default runs/results.sqlite, beside the benchmark's)")
    parser.add_argument("--import-json", type=Path, metavar="PROBE_JSON",
                        help="compute nothing: store the probes of an earlier run from its probe.json into --store")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.analysis.probe_study import model_label, probe_study, probe_table
    from blurbkit.analysis.probing import ProbeSettings
    from blurbkit.errors import BlurbkitError

    if args.import_json is not None:
        from blurbkit.analysis.probe_results import import_probe_json

        info, count = import_probe_json(args.import_json, args.store)
        print(f"stored {count} probes of {info['dataset']} ({info['settings']['pool']} pooling, budget {info['budget']}) "
              f"in {args.store}")
        return 0
    if args.dataset is None:
        raise BlurbkitError("probe: --dataset is needed (or --import-json to store an earlier run's results)")

    settings = ProbeSettings(pool=args.pool, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                             mlp_size=args.mlp_size, seeds=args.seeds)
    out = args.out or Path("runs") / "probe" / f"{args.dataset}-{model_label(args.model).split(' ')[0]}"
    info = probe_study(args.dataset, out, model=args.model, data=args.data, settings=settings,
                       max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
                       max_test_examples=args.max_test_examples, max_length=args.max_length,
                       precision=args.precision, progress=not args.no_progress, store=args.store)
    print(probe_table(info))
    print(f"wrote {out}/probe.md, probe.csv, probe.json, probe.png; {len(info['summary'])} depths x "
          f"{args.seeds} seeds stored in {args.store}")
    return 0
