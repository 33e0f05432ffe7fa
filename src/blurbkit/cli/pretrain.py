"""`blurbkit pretrain`: masked-LM (+ NSP) pretraining from scratch or continual, on one or many devices."""

from __future__ import annotations

import argparse
import json

from blurbkit.cli.argtypes import (
    finite_float,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from blurbkit.cli.finetune import add_adversarial_options, adversarial_settings
from blurbkit.pretrain.objectives import OBJECTIVES, resolve_objective


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="masked-LM pretraining (from scratch with your vocabulary, or continual from a model)",
        description="Runs the same under `accelerate launch -m blurbkit pretrain ...` or "
        "`torchrun --nproc_per_node N -m blurbkit pretrain ...` (DDP; --batch-size is per process).",
    )
    p.add_argument("--corpus", nargs="+", required=True, help="corpus files or folders (`blurbkit corpus build` output or raw text)")
    p.add_argument("--out", required=True, help="output Hugging Face model directory (checkpoints/ and data/ go inside)")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-scratch", metavar="PRESET|CONFIG.json",
                       help="random init: tiny, mini, small, medium, base, large, or a BERT config JSON")
    start.add_argument("--init", metavar="MODEL_DIR", help="continual pretraining from this model (keeps its vocabulary); 'default' = MiniLM")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (required from scratch; with --init it must be the model's own)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per sequence (default 128)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="sequences per micro-batch per process (default 32)")
    p.add_argument("--grad-accum", type=positive_int, default=1, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--lr", type=positive_float, default=6e-4, help="peak learning rate (default 6e-4, PubMedBERT)")
    p.add_argument("--warmup", type=non_negative_float, default=0.1, help="warm-up: fraction of steps (<1) or steps (>=1); default 0.1")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (default: --epochs over the corpus)")
    p.add_argument("--epochs", type=positive_float, default=1.0, help="passes over the corpus when --max-steps is not given")
    p.add_argument("--masking", choices=["whole-word", "subword"], default="whole-word", help="default whole-word")
    p.add_argument("--mask-rate", type=finite_float, default=0.15, help="fraction of tokens predicted (default 0.15; 80/10/10)")
    p.add_argument("--mask-schedule", action="store_true", help="masking rate 5%%->25%%, +5 points each fifth of training")
    p.add_argument("--objective", choices=OBJECTIVES.names(), default=None,
                   help="pretraining objective (default mlm = masked LM; mlm_nsp adds next-sentence prediction; "
                        "mlm_pairs = masked LM alone over mlm_nsp's segment pairs; "
                        "electra = replaced-token detection with a small generator)")
    p.add_argument("--generator-size", type=finite_float, default=None, metavar="FRACTION",
                   help="electra: generator width as a fraction of the discriminator's (0 < f <= 1; default 0.25)")
    p.add_argument("--rtd-weight", type=finite_float, default=None, help="electra: weight of the replaced-token detection loss (default 50)")
    add_adversarial_options(p, "ALUM-style adversarial training", alpha=10.0)  # ALUM's KL weight
    p.add_argument("--nsp", action="store_true", help="same as --objective mlm_nsp (two-segment inputs + next-sentence prediction)")
    p.add_argument("--no-packing", action="store_true", help="one document per sequence instead of packed windows")
    p.add_argument("--seed", type=non_negative_int, default=42)
    p.add_argument("--save-every", type=positive_int, default=500, help="checkpoint every N steps (default 500)")
    p.add_argument("--keep-checkpoints", type=positive_int, default=2)
    p.add_argument("--log-every", type=positive_int, default=10)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/checkpoints has a checkpoint")
    p.add_argument("--max-minutes", type=positive_float, default=None, help="wall-time budget: checkpoint and stop after it")
    p.add_argument("--max-docs", type=positive_int, default=None, help="use only the first N documents of the corpus")
    p.add_argument("--cache-dir", default=None, help="tokenised corpus cache (default OUT/data)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads per process")
    p.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"], default="auto",
                   help="auto = bf16 autocast where the CPU/GPU runs it fast, else fp32")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from blurbkit.errors import BlurbkitError
    from blurbkit.pretrain.config import PretrainConfig
    from blurbkit.pretrain.trainer import pretrain
    from blurbkit.runtime.capability import cap_torch_threads

    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        cap_torch_threads()
    for name in ("max_length",):
        if getattr(args, name) < 1:
            raise BlurbkitError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.mask_rate < 1:
        raise BlurbkitError("--mask-rate must be between 0 and 1")
    objective = resolve_objective(args.objective, args.nsp, explicit=args.objective is not None)
    cfg = PretrainConfig(
        corpus=args.corpus, out=args.out, tokenizer=args.tokenizer, from_scratch=args.from_scratch, init=args.init,
        max_length=args.max_length, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
        warmup=args.warmup, weight_decay=args.weight_decay, max_steps=args.max_steps, epochs=args.epochs,
        mask_rate=args.mask_rate, masking=args.masking, mask_schedule=args.mask_schedule,
        objective=objective, nsp=args.nsp, **check_objective_options(args, objective),
        **adversarial_settings(args),
        packing=not args.no_packing, seed=args.seed, save_every=args.save_every, keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every, resume=not args.no_resume, max_minutes=args.max_minutes, stop_after=args.stop_after,
        max_docs=args.max_docs, cache_dir=args.cache_dir, mixed_precision=args.mixed_precision,
        progress=not args.no_progress,
    )
    summary = pretrain(cfg)
    if not summary["main_process"]:
        return 0
    keys = ("steps", "total_steps", "stopped", "examples", "corpus_tokens", "tokens_per_s", "seconds", "resumed_from")
    print(json.dumps({k: summary[k] for k in keys}))
    if summary["stopped"] != "interrupted":
        print(f"wrote the model to {args.out}")
    return 0


def check_objective_options(args: argparse.Namespace, objective: str) -> dict[str, float]:
    """The objective-specific options given (ELECTRA's --generator-size, --rtd-weight: None when not
    given, so the objective's own defaults apply). One given for another objective would be read by
    nothing: one line instead of silence."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.pretrain.objectives import OBJECTIVES, get_objective

    owners = {option: name for name in OBJECTIVES.names() for option in get_objective(name).reads}
    given = {option: getattr(args, option) for option in owners if getattr(args, option) is not None}
    foreign = [option for option in given if option not in get_objective(objective).reads]
    if foreign:
        raise BlurbkitError(f"{', '.join('--' + o.replace('_', '-') for o in foreign)}: only with --objective "
                            f"{'/'.join(sorted({owners[o] for o in foreign}))} (this run's objective is {objective})")
    return given
