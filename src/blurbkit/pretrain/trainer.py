"""Pretraining (masked LM, optionally + NSP; objectives in ``pretrain/objectives``) with Hugging Face Accelerate.

One loop for one CPU, one GPU or many (``accelerate launch`` / ``torchrun`` start one process per
device; this code shards every global batch by rank itself, so the data order, the masks and hence
the result depend only on the seed and the global batch size).

Exact resume: data order is a seeded permutation per epoch, masks are a pure function of
(seed, epoch, example), and checkpoints hold model, optimizer, scheduler, RNG states and the data
position. An interrupted run resumed from its last checkpoint ends with the same weights as an
uninterrupted one.

The loop reads top to bottom: :func:`pretrain` = :func:`_setup` (accelerator, model, data,
optimiser, resume) -> :func:`_train` (one :func:`_step` per optimiser step, :func:`_save` on
schedule) -> :func:`_finish` (summary, model directory). What is learned (model class, training
module, losses, data layout, what is saved) is the objective's (``objectives.get_objective``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import check_writable, write_json
from blurbkit.pretrain import checkpoint as ckpt
from blurbkit.pretrain.config import PretrainConfig, config_digest, model_and_tokenizer
from blurbkit.pretrain.corpus import corpus_files
from blurbkit.pretrain.data import (
    Collator,
    MaskingConfig,
    check_max_length,
    check_whole_words,
    make_examples,
    mask_rate_at,
)
from blurbkit.pretrain.loop_state import DataOrder, TrainLog, truncate_log
from blurbkit.pretrain.objectives import Objective, get_objective, resolve_objective
from blurbkit.pretrain.token_cache import TokenCache, build_token_cache
from blurbkit.runtime.allocator import tune_allocator
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.dropout import fast_dropout
from blurbkit.testhook import kill_point

ADVERSARY_STREAM = 13  # the adversarial noise's stream beside the masks' and dropout's (same key otherwise)
MASKING_DEFAULTS = {f.name: f.default for f in fields(PretrainConfig) if f.name in ("masking", "mask_rate", "mask_schedule")}


def warmup_steps(warmup: float, total_steps: int) -> int:
    """--warmup: a step count when >= 1, else a fraction of the steps."""
    return int(warmup) if warmup >= 1 else int(round(warmup * total_steps))


def _finalize(out: Path, model, tokenizer) -> None:
    """Write the Hugging Face model directory files, each renamed into place. The summary that says
    the run finished goes first (it is written again by the caller once every file is in place), so
    a kill among the renames never leaves a finished-looking folder holding an earlier run's weights."""
    import shutil
    import tempfile

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # transformers' "Writing model shards" bar: the run has its own
    (out / "pretrain_summary.json").unlink(missing_ok=True)
    for stale in out.glob(".final.*"):  # what a killed earlier finalize left: a full copy of a model
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".final.", dir=out))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if not (tmp / "vocab.txt").is_file():  # for tools that read a BERT vocab.txt
            vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            (tmp / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in vocab), "utf-8")
        for item in tmp.iterdir():
            os.replace(item, out / item.name)
    except OSError as err:
        raise BlurbkitError(f"cannot write the final model ({err.strerror or err})", path=out) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Run:
    """Everything the loop needs, built once by _setup."""

    cfg: PretrainConfig
    accelerator: Any
    objective: Objective
    tokenizer: Any
    module: Any  # the objective's training module (prepared by Accelerate)
    optimizer: Any
    scheduler: Any
    cache: TokenCache
    examples: np.ndarray
    order: DataOrder
    collate: Collator
    masking: MaskingConfig
    total_steps: int
    warmup: int
    signature: dict[str, Any]
    out: Path
    step: int = 0
    resumed_from: str | None = None
    adversary: Any = None  # runtime.adversarial.Adversary with --adversarial

    @property
    def ckpt_root(self) -> Path:
        return self.out / "checkpoints"


# ---------------------------------------------------------------- setup


def _accelerator(cfg: PretrainConfig):
    import torch
    from accelerate import Accelerator

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    precision = cfg.mixed_precision
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "auto" or (precision != "no" and device.type == "cpu"):
        from blurbkit.runtime.precision import autocast_dtype

        # On a CPU an explicit bf16 asks runtime/capability.py too, as fine-tuning does: without
        # native bf16 it falls back to fp32 with one notice instead of running emulated, ~100x slower.
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(autocast_dtype(precision, device), "no")
    if launched == 1:
        # Accelerate keeps one process-wide state; a Trainer or an earlier pretrain call in this
        # process may have set another precision, which Accelerator() would refuse to change.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    # Accelerate only sets up CPU DDP (gloo) when asked for the CPU explicitly.
    accelerator = Accelerator(mixed_precision=precision, cpu=launched > 1 and not torch.cuda.is_available())
    if launched != accelerator.num_processes:
        raise BlurbkitError(f"launched as {launched} processes but Accelerate set up {accelerator.num_processes}; "
                            "check the launcher")
    return accelerator


def _data(cfg: PretrainConfig, objective: Objective, tokenizer, accelerator, out: Path) -> tuple[TokenCache, np.ndarray]:
    """The tokenised corpus (process 0 builds the cache, the others reuse it) and the example rows."""
    with accelerator.main_process_first():
        cache = build_token_cache(cfg.corpus, tokenizer, Path(cfg.cache_dir) if cfg.cache_dir else out / "data",
                                  progress=cfg.progress and accelerator.is_main_process, max_docs=cfg.max_docs)
    objective.check_corpus(cache)
    examples = make_examples(cache, cfg.max_length, mode=objective.example_mode(cfg.packing), seed=cfg.seed)
    if len(examples) == 0:
        raise BlurbkitError("the corpus is too small to make one training sequence")
    if accelerator.is_main_process:
        for note in objective.example_notes(examples):
            print(f"blurbkit: warning: {note}", file=sys.stderr)
    return cache, examples


def _setup(cfg: PretrainConfig, objective: Objective) -> Run:
    from blurbkit.runtime.optim import adamw, parameter_groups, warmup_linear_decay

    accelerator = _accelerator(cfg)
    out = Path(cfg.out)
    if accelerator.is_main_process:
        check_writable(out, "--out folder", folder=True)  # a file or a dangling link there: one line
        if cfg.cache_dir:
            check_writable(Path(cfg.cache_dir), "--cache-dir", folder=True)
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    model, tokenizer = model_and_tokenizer(cfg, objective)
    if cfg.max_length > model.config.max_position_embeddings:
        raise BlurbkitError(f"--max-length {cfg.max_length} exceeds the model's max_position_embeddings "
                            f"{model.config.max_position_embeddings}")
    check_whole_words(tokenizer, cfg.masking == "whole-word")
    cache, examples = _data(cfg, objective, tokenizer, accelerator, out)
    order = DataOrder(len(examples), cfg.seed, cfg.batch_size, accelerator.process_index, accelerator.num_processes)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(examples) / (order.global_batch * cfg.grad_accum)))
    warmup = warmup_steps(cfg.warmup, total_steps)
    module = objective.module(model)
    adversarial = adversarial_config(cfg)
    adversary = None
    if adversarial is not None:
        from blurbkit.runtime.adversarial import Adversary

        adversary = Adversary(model.get_input_embeddings(), adversarial)
        objective.attach_adversary(module, adversary)
    optimizer = adamw(parameter_groups(module.named_parameters(), cfg.lr, cfg.weight_decay), cfg.lr, fused=False,
                      betas=cfg.betas, eps=cfg.adam_eps)
    signature = {"model_config": config_digest(model.config), "tokenizer": cache.meta["tokenizer"],
                 "corpus": cache.meta["corpus"], "examples": len(examples), "mode": objective.example_mode(cfg.packing),
                 "max_length": cfg.max_length, "global_batch": order.global_batch, "grad_accum": cfg.grad_accum,
                 "seed": cfg.seed, "total_steps": total_steps, **objective.signature()}
    # Masking other than the default (whole-word, 15 %, no schedule) is part of what a checkpoint
    # continues: a whole-word run resumed with --masking subword would mix two kinds of masking.
    masking = {k: v for k, v in (("masking", cfg.masking), ("mask_rate", cfg.mask_rate), ("mask_schedule", cfg.mask_schedule))
               if v != MASKING_DEFAULTS[k]}
    if masking:  # only when set: checkpoints of default runs keep their signature
        signature["masking"] = masking
    if adversarial is not None:  # only when on: checkpoints of runs without it keep their signature
        # The term now runs in fp32 under bf16 autocast (runtime/adversarial.py): a checkpoint of an
        # earlier adversarial run, which computed it in bf16, does not continue as this one.
        # Its initial noise is keyed by (seed, slice, step); earlier runs drew it from torch's global
        # stream (the same on every process), so their checkpoints do not continue as this one either.
        signature["adversarial"] = {**asdict(adversarial), "term": "fp32", "noise": "keyed"}
    collator = objective.collator(tokenizer, cache, cfg.max_length, cfg.seed)
    run = Run(cfg, accelerator, objective, tokenizer, module, optimizer,
              warmup_linear_decay(optimizer, total_steps, warmup), cache, examples, order,
              collator,
              MaskingConfig(rate=cfg.mask_rate, whole_word=cfg.masking == "whole-word", mask_fraction=objective.mask_fraction,
                            random_fraction=objective.random_fraction), total_steps, warmup, signature, out,
              adversary=adversary)
    _resume(run)
    run.module, run.optimizer = accelerator.prepare(run.module, run.optimizer)
    if accelerator.is_main_process:
        truncate_log(out / "train_log.jsonl", run.step if run.resumed_from else 0)
    return run


def _resume(run: Run) -> None:
    """Load the latest readable checkpoint (model, optimizer, scheduler, RNG, data position), or
    with --no-resume remove the old checkpoints."""
    if not run.cfg.resume:
        if run.ckpt_root.is_dir() and run.accelerator.is_main_process:
            import shutil

            shutil.rmtree(run.ckpt_root, ignore_errors=True)
        return
    skipped: list[tuple[Path, str]] = []
    found = ckpt.latest_checkpoint(run.ckpt_root, skipped=skipped)
    if found is None:
        if run.ckpt_root.is_dir() and any(run.ckpt_root.glob("step-*")):
            why = f" (newest: {skipped[0][1]})" if skipped else ""
            raise BlurbkitError(f"checkpoints exist but none reads back{why}; remove them or pass --no-resume",
                                path=run.ckpt_root)
        return
    if skipped and run.accelerator.is_main_process:
        corrupt = ", ".join(path.name for path, _ in skipped)
        print(f"blurbkit: notice: checkpoint {corrupt} does not read back ({skipped[0][1]}); "
              f"resuming from the newest intact one, {found.name}", file=sys.stderr)
    state = ckpt.load_checkpoint(found, model=run.module, optimizer=run.optimizer, scheduler=run.scheduler,
                                 rank=run.accelerator.process_index, signature=run.signature)
    run.step, run.order.epoch, run.order.offset = state["step"], state["epoch"], state["offset"]
    run.resumed_from = str(found)


@contextmanager
def _cpu_speedups(run: Run) -> Iterator[Any]:
    """On CPU: glibc heap tuning, fast dropout masks (per-step seeds, so a resumed run draws the
    same masks) and bf16 training attention (runtime/); yields the dropout mask source or None."""
    if run.accelerator.device.type != "cpu":
        yield None
        return
    if run.cfg.tune_allocator:
        tune_allocator()
    module = run.accelerator.unwrap_model(run.module)
    with ExitStack() as stack:
        masks = stack.enter_context(fast_dropout(module, [run.cfg.seed, run.accelerator.process_index, run.step]))
        for model in run.objective.hf_models(module):
            stack.enter_context(cpu_attention(model))
        yield masks


# ---------------------------------------------------------------- the loop


def adversarial_config(cfg: PretrainConfig):
    """The --adversarial settings (checked), or None without --adversarial."""
    if not cfg.adversarial:
        return None
    from blurbkit.runtime.adversarial import AdversarialConfig

    return AdversarialConfig(epsilon=cfg.adv_epsilon, steps=cfg.adv_steps, step_size=cfg.adv_step_size, alpha=cfg.adv_alpha,
                             norm=cfg.adv_norm)


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    objective = get_objective(resolve_objective(cfg.objective, cfg.nsp))
    objective.configure(cfg)  # the objective's own options, refused before any work
    adversarial_config(cfg)
    check_max_length(cfg.max_length)  # before the corpus is tokenised
    corpus_files(cfg.corpus)  # a missing corpus is refused before the model loads
    check_output(Path(cfg.out))
    out, made = Path(cfg.out), not Path(cfg.out).exists()
    try:
        run = _setup(cfg, objective)
    except BlurbkitError:
        if made:  # refused input leaves no empty output folder behind (files, if any, are kept)
            _remove_if_empty(out)
        raise
    log = TrainLog(run.out / "train_log.jsonl", run.accelerator.is_main_process, resumed=run.resumed_from is not None)
    stopped = _train(run, log)
    return _finish(run, log, stopped)


# What a pretraining leaves in its --out (any one): a folder holding none of them is not ours to write into.
PRETRAIN_OUTPUTS = ("train_log.jsonl", "checkpoints", "pretrain_summary.json", "data")


def check_output(out: Path) -> None:
    """--out may be new, empty, or an earlier pretraining's folder (continued or finished): never a
    user's model or file given by mistake, whose weights and tokenizer the run would overwrite."""
    if out.exists() and not out.is_dir():
        raise BlurbkitError("is a file; --out is the folder the model, checkpoints and logs go to", path=out)
    if out.is_dir() and any(out.iterdir()) and not any((out / name).exists() for name in PRETRAIN_OUTPUTS):
        raise BlurbkitError("exists and is not a blurbkit pretraining output (no train_log.jsonl, checkpoints/ or data/); "
                            "choose a new or empty --out", path=out)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _train(run: Run, log: TrainLog) -> str:
    """Optimizer steps until the end, the time budget or a (test) interruption; returns which."""
    cfg, accelerator = run.cfg, run.accelerator
    bar = None
    if cfg.progress and accelerator.is_main_process:
        from tqdm import tqdm

        bar = tqdm(total=run.total_steps, initial=run.step, desc="pretrain", unit="step", mininterval=1.0)
    run.module.train()
    stopped = "finished"
    with _cpu_speedups(run) as masks:
        while run.step < run.total_steps:
            rate = mask_rate_at(run.step, run.total_steps, cfg.mask_schedule, cfg.mask_rate)
            log.optimizer_step(_step(run, rate, log, masks))
            run.step += 1
            lr = run.scheduler.get_last_lr()[0]
            elapsed = time.time() - log.start
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{log.ema:.3f}", tok_s=f"{log.tokens_seen / max(elapsed, 1e-9):.0f}",
                                lr=f"{lr:.2e}", mask=f"{rate:.2f}", refresh=False)
            if run.step % cfg.log_every == 0 or run.step == run.total_steps:
                log.write(run.step, lr, rate, run.order.epoch)
            out_of_time = (cfg.max_minutes is not None and run.step < run.total_steps
                           and _any_process(run, elapsed > cfg.max_minutes * 60))
            interrupted = cfg.stop_after is not None and cfg.stop_after <= run.step < run.total_steps
            if run.step % cfg.save_every == 0 or run.step == run.total_steps or out_of_time or interrupted:
                _save(run)
            kill_point(f"step:{run.step}")  # tests: a real kill after this step (and its checkpoint)
            if out_of_time or interrupted:
                stopped = "time budget" if out_of_time else "interrupted"
                break
    if bar is not None:
        bar.close()
    return stopped


def _any_process(run: Run, flag: bool) -> bool:
    """True on every process when it is True on any: each process reads its own clock, and a stop
    decided on one alone would leave the others waiting in the next step's all-reduce."""
    if run.accelerator.num_processes == 1:
        return flag
    import torch

    votes = run.accelerator.reduce(torch.tensor([float(flag)], device=run.accelerator.device), reduction="sum")
    return bool(votes.item() > 0)


def _step(run: Run, rate: float, log: TrainLog, masks: Any = None) -> float:
    """One optimizer step over --grad-accum micro-batches; returns the step's mean loss over every
    micro-batch of every process.

    The global step is a sequence of slices (micro-batch m of process r is slice m * world + r);
    the data, the masks and the dropout stream of a slice depend on its index alone, so one process
    with --grad-accum 2 computes exactly what two processes do (tests/test_ddp.py)."""
    import torch

    cfg, accelerator = run.cfg, run.accelerator
    world = accelerator.num_processes
    losses, parts_of_step, tokens = [], {}, 0
    for micro in range(cfg.grad_accum):
        if masks is not None:
            masks.reseed([cfg.seed, micro * world + accelerator.process_index, run.step])
        if run.adversary is not None:  # its initial noise, keyed like the masks: DDP = one process + accumulation
            run.adversary.reseed([cfg.seed, micro * world + accelerator.process_index, run.step, ADVERSARY_STREAM])
        local, epochs = run.order.next_batch()
        batch = run.collate(run.examples[local], local, epochs, run.masking, rate)
        tokens += int(batch["attention_mask"].sum()) * world
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        accumulating = micro < cfg.grad_accum - 1 and world > 1
        with accelerator.no_sync(run.module) if accumulating else nullcontext():
            loss, parts = run.module(**batch)
            accelerator.backward(loss / cfg.grad_accum)
        losses.append(loss.detach().float())
        for name, value in parts.items():
            parts_of_step.setdefault(name, []).append(torch.as_tensor(value).detach().float())
    # One all-reduce per step: the log shows the global batch's loss, not process 0's share.
    values = torch.stack([torch.stack(losses).mean()] + [torch.stack(v).mean() for v in parts_of_step.values()])
    if world > 1:
        values = accelerator.reduce(values.to(accelerator.device), reduction="mean")
    values = values.cpu().tolist()
    parts = dict(zip(parts_of_step, values[1:], strict=True))
    step_loss = values[0]
    if cfg.max_grad_norm > 0:
        # The global gradient's norm before clipping (DDP has all-reduced it): logged, since a
        # gradient scaled wrongly (accumulation, processes) shows here first.
        parts["grad_norm"] = float(accelerator.clip_grad_norm_(run.module.parameters(), cfg.max_grad_norm))
    log.micro_batch(parts, tokens)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return step_loss


def _save(run: Run) -> None:
    """Checkpoint: process 0 writes the model, optimizer, scheduler, data position and every process's RNG."""
    import torch
    from accelerate.utils import gather_object

    states = gather_object([(run.accelerator.process_index, {k: v.numpy() for k, v in ckpt.rng_state().items()})])
    if run.accelerator.is_main_process:
        rng_states = {r: {k: torch.from_numpy(np.asarray(v)) for k, v in s.items()} for r, s in states}
        ckpt.save_checkpoint(run.ckpt_root, run.step, model=run.accelerator.unwrap_model(run.module),
                             optimizer=run.optimizer, scheduler=run.scheduler, rng_states=rng_states,
                             keep=run.cfg.keep_checkpoints,
                             state={"epoch": run.order.epoch, "offset": run.order.offset, "signature": run.signature})
    run.accelerator.wait_for_everyone()


def _finish(run: Run, log: TrainLog, stopped: str) -> dict[str, Any]:
    """The summary; unless interrupted, the model directory (process 0)."""
    accelerator = run.accelerator
    elapsed = time.time() - log.start
    summary = {"steps": run.step, "total_steps": run.total_steps, "stopped": stopped, "examples": len(run.examples),
               "corpus_tokens": run.cache.n_tokens, "tokens_processed_this_run": log.tokens_seen,
               "tokens_per_s": log.tokens_seen / max(elapsed, 1e-9), "seconds": elapsed,
               "world_size": accelerator.num_processes, "resumed_from": run.resumed_from, "warmup_steps": run.warmup,
               "objective": run.objective.name, "main_process": accelerator.is_main_process, "config": asdict(run.cfg)}
    if accelerator.is_main_process and stopped != "interrupted":
        model = run.objective.saved_model(accelerator.unwrap_model(run.module))
        _finalize(run.out, model, run.tokenizer)
        write_json(run.out / "pretrain_summary.json", summary)  # last: the folder is complete
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:
        # Left to interpreter exit, gloo's threads were torn down mid-flight now and then: "terminate
        # called without an active exception" and exit -6 of a rank whose work had finished.
        accelerator.end_training()
    return summary
