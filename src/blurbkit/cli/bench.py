"""`blurbkit bench`: speed benchmarks against the Hugging Face Trainer and pipeline.

  blurbkit bench speed [--dataset bc5chem|chemprot|...] [--model DIR] [--train-examples N] [--eval-examples N]
  blurbkit bench inference [--dataset bc5chem] [--model DIR | --finetuned DIR] [--sentences N]
  blurbkit bench pretrain --corpus PATH... [--tokenizer DIR] [--preset tiny] [--steps N] [--batch-size N]

Each prints one JSON line and writes it to RESULTS_DIR/speed_<dataset>.json
(speed_inference_<dataset>.json, speed_pretrain_<preset>.json); see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blurbkit.cli.argtypes import non_negative_int, positive_float, positive_int


def _common(parser: argparse.ArgumentParser, dataset: str) -> None:
    parser.add_argument("--dataset", default=dataset, help=f"dataset (default: {dataset})")
    parser.add_argument("--model", help="local Hugging Face model directory (default: the embedded MiniLM-L6-H384)")
    parser.add_argument("--data", help="prepared directory or raw source folder (default: $BLURBKIT_DATA or ../shared/data)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"),
                        help="where the JSON result is also written (default: benchmarks/results)")
    parser.add_argument("--peak-seconds", type=positive_float, default=1.0,
                        help="time spent measuring the matmul peak, per native dtype (non-native dtypes are skipped)")
    parser.add_argument("--peak-size", type=positive_int, default=2048, help="side of the square matmul timed for the peak (default: 2048)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks: blurbkit vs the Hugging Face Trainer and pipeline")
    commands = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)

    speed = commands.add_parser("speed", help="fine-tuning and evaluation speed vs the Trainer recipe (token or sequence task)")
    _common(speed, "bc5chem")
    speed.add_argument("--train-examples", type=positive_int, default=2000, help="seeded train subsample (default: 2000)")
    speed.add_argument("--eval-examples", type=positive_int, default=1000, help="seeded dev subsample (default: 1000)")
    speed.add_argument("--epochs", type=positive_int, default=1)
    speed.add_argument("--batch-size", type=positive_int, default=32)
    speed.add_argument("--lr", type=positive_float, default=5e-5)
    speed.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                       help="blurbkit engine setting (FinetuneConfig field), e.g. compile=true, precision=fp32")
    speed.add_argument("--no-trainer", action="store_true", help="measure blurbkit only (setting studies)")
    speed.set_defaults(func=run_speed)

    infer = commands.add_parser("inference", help="raw-sentence NER inference vs pipeline('token-classification')")
    _common(infer, "bc5chem")
    infer.add_argument("--sentences", type=positive_int, default=1000, help="dev sentences used as raw text (default: 1000)")
    infer.add_argument("--finetuned", help="a fine-tuned blurbkit model (RUN_DIR/model); default: fine-tune one first")
    infer.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch",
                       help="blurbkit's forward pass: torch (exact, default), onnx or onnx-int8 (exported first)")
    infer.add_argument("--train-examples", type=positive_int, default=1000,
                       help="without --finetuned: train examples for the one-epoch model (default: 1000)")
    infer.add_argument("--pipeline-batch-size", type=positive_int, help="pipeline batch_size (default: the pipeline's own, 1)")
    infer.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                       help="blurbkit inference setting (a RuntimeSettings field), e.g. bf16_inference=false, "
                            "precision=fp32; threads=N applies to both sides")
    infer.set_defaults(func=run_inference)

    pre = commands.add_parser("pretrain", help="masked-LM pretraining speed vs BertForMaskedLM + whole-word collator + Trainer")
    pre.add_argument("--corpus", nargs="+", required=True, help="corpus files or folders (as for `blurbkit pretrain`)")
    pre.add_argument("--tokenizer", default="default", help="tokenizer directory (default: the default model's vocabulary)")
    pre.add_argument("--preset", default="tiny", help="model size from scratch: a preset or a BERT config JSON (default tiny)")
    pre.add_argument("--max-docs", type=int, default=2000, help="corpus slice: the first N documents (default 2000)")
    pre.add_argument("--max-length", type=int, default=128)
    pre.add_argument("--batch-size", type=int, default=32)
    pre.add_argument("--steps", type=int, default=30, help="optimizer steps on each side (default 30)")
    pre.add_argument("--lr", type=positive_float, default=6e-4)
    pre.add_argument("--seed", type=non_negative_int, default=0)
    pre.add_argument("--loss-window", type=int, default=5, help="MLM loss reported as the mean of the last N steps")
    pre.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"))
    pre.add_argument("--peak-seconds", type=positive_float, default=1.0)
    pre.add_argument("--peak-size", type=positive_int, default=2048)
    pre.add_argument("--threads", type=positive_int, help="torch CPU threads")
    pre.set_defaults(func=run_pretrain)


def _emit(result: dict, results_dir: Path, name: str) -> None:
    from blurbkit.fileio import write_json

    for dtype, why in result.get("peak_skipped", {}).items():
        print(f"blurbkit: {dtype} matmul peak not measured: {why}", file=sys.stderr)
    line = json.dumps(result)
    write_json(results_dir / name, result)
    print(line)


def run_speed(args: argparse.Namespace) -> int:
    from blurbkit.cli.finetune import parse_part_options
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import check_writable
    from blurbkit.speed.speed import speed
    from blurbkit.train.config import FinetuneConfig

    check_writable(args.results_dir, "--results-dir", folder=True)  # before the benchmark, not after it
    options = parse_part_options(args.engine_option, "--engine-option")
    unknown = set(options) - set(FinetuneConfig.option_names())
    if unknown:
        raise BlurbkitError(f"--engine-option: unknown setting(s) {', '.join(sorted(unknown))} (see FinetuneConfig)")
    # What both sides share is set by the bench's own flags, never for one side alone.
    shared = set(options) & {"dataset", "seed", "lr", "batch_size", "epochs", "weight_decay", "progress", "save_model",
                             "model", "data", "max_train_examples", "max_eval_examples", "max_test_examples"}
    if shared:
        raise BlurbkitError(f"--engine-option: {', '.join(sorted(shared))} would apply to blurbkit's side only; "
                            "use the bench's own flags (--lr, --batch-size, --epochs, --seed, --train-examples ...)")
    try:
        FinetuneConfig(dataset=args.dataset, **options)  # values checked before the Trainer side runs
    except (TypeError, BlurbkitError) as err:
        raise BlurbkitError(f"--engine-option: {err}") from None
    result = speed(
        args.dataset, model=args.model, data=args.data, train_examples=args.train_examples,
        eval_examples=args.eval_examples, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        progress=args.progress, engine_options=options, trainer=not args.no_trainer, peak_seconds=args.peak_seconds,
        peak_size=args.peak_size,
    )
    variant = "".join(f"__{key}-{value}" for key, value in sorted(options.items())) + ("__no-trainer" if args.no_trainer else "")
    _emit(result, args.results_dir, f"speed_{args.dataset}{variant}.json")
    return 0


def _inference_settings(pairs: list[str]) -> dict:
    """--engine-option KEY=VALUE pairs as runtime settings, checked (as Predictor checks them) before anything runs."""
    from blurbkit.cli.finetune import parse_part_options
    from blurbkit.errors import BlurbkitError
    from blurbkit.inference.predictor import runtime_settings

    options = parse_part_options(pairs, "--engine-option")
    try:
        runtime_settings(options)
    except BlurbkitError as err:
        raise BlurbkitError(f"--engine-option: {err}") from None
    return options


def run_inference(args: argparse.Namespace) -> int:
    from blurbkit.fileio import check_writable
    from blurbkit.speed.inference import inference

    check_writable(args.results_dir, "--results-dir", folder=True)
    settings = _inference_settings(args.engine_option)
    result = inference(
        args.dataset, model=args.model, data=args.data, sentences=args.sentences, finetuned=args.finetuned,
        train_examples=args.train_examples, seed=args.seed, progress=args.progress,
        pipeline_batch_size=args.pipeline_batch_size, peak_seconds=args.peak_seconds, peak_size=args.peak_size,
        backend=args.backend, settings=settings,
    )
    variant = "" if args.backend == "torch" else f"_{args.backend.replace('-', '_')}"
    variant += "".join(f"__{key}-{value}" for key, value in sorted(settings.items()))
    _emit(result, args.results_dir, f"speed_inference_{args.dataset}{variant}.json")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from blurbkit.errors import BlurbkitError
    from blurbkit.fileio import check_writable
    from blurbkit.speed.pretrain import bench_pretrain

    check_writable(args.results_dir, "--results-dir", folder=True)

    for name in ("steps", "batch_size", "max_length", "loss_window"):
        if getattr(args, name) < 1:
            raise BlurbkitError(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = bench_pretrain(args.corpus, tokenizer=args.tokenizer, preset=args.preset, max_docs=args.max_docs,
                            max_length=args.max_length, batch_size=args.batch_size, steps=args.steps, lr=args.lr,
                            seed=args.seed, loss_window=args.loss_window, peak_seconds=args.peak_seconds,
                            peak_size=args.peak_size)
    _emit(result, args.results_dir, f"speed_pretrain_{Path(args.preset).stem}.json")
    hf, ours = result["trainer"], result["blurbkit"]
    window = f"mlm_loss_last{args.loss_window}"
    print(f"tokens/s: Trainer {hf['tokens_per_s']:,.0f} ({hf['precision']}), blurbkit {ours['tokens_per_s']:,.0f} "
          f"({ours['precision']}), ratio {result['tokens_per_s_ratio']}x; MLM loss after {args.steps} steps "
          f"(mean of the last {args.loss_window}): Trainer {hf[window]}, blurbkit {ours[window]} (different masking tasks); "
          f"held-out MLM loss on the same {result['heldout_sequences']} masked sequences: Trainer {hf['heldout_mlm_loss']}, "
          f"blurbkit {ours['heldout_mlm_loss']}; "
          f"MFU: Trainer {hf['mfu']} of the {hf['mfu_peak']} peak, blurbkit {ours['mfu']} of the {ours['mfu_peak']} peak",
          file=sys.stderr)
    return 0
