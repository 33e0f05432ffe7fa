"""Masked-LM (optionally + NSP) pretraining with Hugging Face Accelerate.

One loop for one CPU, one GPU or many (``accelerate launch`` / ``torchrun`` start one process per
device; this code shards every global batch by rank itself, so the data order, the masks and hence
the result depend only on the seed and the global batch size).

Exact resume: data order is a seeded permutation per epoch, masks are a pure function of
(seed, epoch, example), and checkpoints hold model, optimizer, scheduler, RNG states and the data
position. An interrupted run resumed from its last checkpoint ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import tomllib
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import write_json
from blurbkit.pretrain import checkpoint as ckpt
from blurbkit.pretrain.data import Collator, MaskingConfig, build_token_cache, make_examples, mask_rate_at
from blurbkit.runtime.allocator import tune_allocator
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.dropout import fast_dropout


@dataclass
class PretrainConfig:
    corpus: list[str]
    out: str
    tokenizer: str | None = None
    from_scratch: str | None = None  # preset name or BERT config JSON
    init: str | None = None  # model dir for continual pretraining
    max_length: int = 128
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1
    lr: float = 6e-4
    warmup: float = 0.1  # fraction of steps (<1) or a step count (>=1)
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    epochs: float = 1.0
    mask_rate: float = 0.15
    masking: str = "whole-word"  # or "subword"
    mask_schedule: bool = False
    nsp: bool = False
    packing: bool = True
    seed: int = 42
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = True
    max_minutes: float | None = None
    stop_after: int | None = None  # simulate an interruption (tests) after this many steps
    max_docs: int | None = None
    cache_dir: str | None = None  # tokenised corpus cache (default OUT/data)
    mixed_precision: str = "auto"  # auto = bf16 where the hardware runs it fast (fp16 on older GPUs), else fp32
    tune_allocator: bool = True  # CPU: keep freed activations in glibc's heap (runtime/allocator.py; +46 % tokens/s on mini)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def presets() -> dict[str, dict[str, Any]]:
    text = resources.files("blurbkit.pretrain").joinpath("presets.toml").read_text("utf-8")
    return tomllib.loads(text)


def build_config(spec: str, vocab_size: int, max_length: int, tokenizer):
    """A BertConfig from a preset name or a config JSON file; vocabulary size from the tokenizer."""
    from transformers import BertConfig

    table = presets()
    if spec in table:
        values = dict(table[spec])
    else:
        path = Path(spec)
        if not path.is_file():
            raise BlurbkitError(f"--from-scratch {spec!r} is neither a preset ({', '.join(table)}) nor a config JSON file")
        try:
            values = json.loads(path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BlurbkitError(f"not valid JSON ({err})", path=path) from None
        if not isinstance(values, dict):
            raise BlurbkitError("expected a JSON object (a BERT config)", path=path)
        if values.get("model_type", "bert") != "bert":
            raise BlurbkitError(f"only BERT configs are supported from scratch (model_type {values.get('model_type')!r})", path=path)
        values.pop("model_type", None)
        values.pop("architectures", None)
    if values.get("vocab_size") not in (None, vocab_size):
        raise BlurbkitError(f"config vocab_size {values['vocab_size']} does not match the tokenizer's {vocab_size} entries")
    values["vocab_size"] = vocab_size
    values.setdefault("max_position_embeddings", max(512, max_length))
    values["pad_token_id"] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    config = BertConfig(**values)
    if config.hidden_size % config.num_attention_heads:
        raise BlurbkitError(f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads {config.num_attention_heads}")
    return config


def _model_and_tokenizer(cfg: PretrainConfig):
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForMaskedLM,
        AutoModelForPreTraining,
        BertForMaskedLM,
        BertForPreTraining,
    )

    from blurbkit.models.loading import load_tokenizer, resolve_model_dir

    if (cfg.from_scratch is None) == (cfg.init is None):
        raise BlurbkitError("give exactly one of --from-scratch PRESET|CONFIG.json and --init MODEL_DIR")
    if cfg.init is not None:
        init_dir = resolve_model_dir(cfg.init)
        own = load_tokenizer(init_dir)
        tokenizer = own
        if cfg.tokenizer is not None:
            tokenizer = _load_tok(cfg.tokenizer)
            if tokenizer.get_vocab() != own.get_vocab():
                raise BlurbkitError(f"tokenizer {cfg.tokenizer} ({len(tokenizer)} entries) is not the vocabulary of "
                                    f"{init_dir} ({len(own)} entries); continual pretraining keeps the model's own vocabulary")
        config = AutoConfig.from_pretrained(str(init_dir))
        if len(tokenizer) > config.vocab_size:
            raise BlurbkitError(f"tokenizer has {len(tokenizer)} entries but the model's vocab_size is {config.vocab_size}",
                                path=init_dir)
        auto = AutoModelForPreTraining if cfg.nsp else AutoModelForMaskedLM
        try:
            model = auto.from_pretrained(str(init_dir), use_safetensors=True)
        except (OSError, ValueError, RuntimeError) as err:
            raise BlurbkitError(f"cannot load the model ({str(err).splitlines()[0]})", path=init_dir) from None
        return model, tokenizer
    if cfg.tokenizer is None:
        raise BlurbkitError("--from-scratch needs --tokenizer DIR (build one with `blurbkit vocab build`)")
    tokenizer = _load_tok(cfg.tokenizer)
    config = build_config(cfg.from_scratch, len(tokenizer), cfg.max_length, tokenizer)
    torch.manual_seed(cfg.seed)
    model = BertForPreTraining(config) if cfg.nsp else BertForMaskedLM(config)
    return model, tokenizer


def _load_tok(path: str):
    from blurbkit.pretrain.vocab import load_any_tokenizer

    return load_any_tokenizer(path)


def _pretraining_module(model, nsp: bool):
    """Wraps the HF model so the MLM head runs only on masked positions (about 7x less head compute)."""
    import torch
    from torch import nn

    class Pretraining(nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner
            self.is_bert = getattr(inner.config, "model_type", "") == "bert" and hasattr(inner, "bert") and hasattr(inner, "cls")

        def forward(self, input_ids, attention_mask, token_type_ids, masked_index, mlm_labels, nsp_labels=None):
            ce = nn.functional.cross_entropy
            if self.is_bert:
                out = self.inner.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])[masked_index]
                if nsp:
                    logits = self.inner.cls.predictions(hidden)
                    nsp_logits = self.inner.cls.seq_relationship(out.pooler_output)
                else:
                    logits = self.inner.cls(hidden)
                mlm = ce(logits.float(), mlm_labels)
            else:  # any other *ForMaskedLM: full-sequence labels
                labels = torch.full_like(input_ids, -100).reshape(-1)
                labels[masked_index] = mlm_labels
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels.view_as(input_ids))
                mlm = out.loss
                nsp_logits = getattr(out, "seq_relationship_logits", None)
            loss = mlm
            nsp_loss = None
            if nsp and nsp_labels is not None and nsp_logits is not None:
                nsp_loss = ce(nsp_logits.float(), nsp_labels)
                loss = loss + nsp_loss
            return loss, mlm.detach(), None if nsp_loss is None else nsp_loss.detach()

    return Pretraining(model)


def _config_digest(config) -> str:
    d = config.to_dict()
    for k in ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"):
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finalize(out: Path, model, tokenizer, summary: dict[str, Any]) -> None:
    """Write the Hugging Face model directory files; each file is renamed into place."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=".final.", dir=out))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if not (tmp / "vocab.txt").is_file():  # for tools that read a BERT vocab.txt
            vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            (tmp / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in vocab), "utf-8")
        (tmp / "pretrain_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", "utf-8")
        for item in tmp.iterdir():
            os.replace(item, out / item.name)
    except OSError as err:
        raise BlurbkitError(f"cannot write the final model ({err.strerror or err})", path=out) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import gather_object

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    # Accelerate only sets up CPU DDP (gloo) when asked for the CPU explicitly.
    precision = cfg.mixed_precision
    if precision == "auto":
        from blurbkit.runtime.precision import autocast_dtype

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(autocast_dtype("auto", device), "no")
    if launched == 1:
        # Accelerate keeps one process-wide state; a Trainer or an earlier pretrain call in this
        # process may have set another precision, which Accelerator() would refuse to change.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision, cpu=launched > 1 and not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    if launched != world:
        raise BlurbkitError(f"launched as {launched} processes but Accelerate set up {world}; check the launcher")
    out = Path(cfg.out)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    model, tokenizer = _model_and_tokenizer(cfg)
    if cfg.max_length > model.config.max_position_embeddings:
        raise BlurbkitError(f"--max-length {cfg.max_length} exceeds the model's max_position_embeddings "
                            f"{model.config.max_position_embeddings}")
    with accelerator.main_process_first():
        cache = build_token_cache(cfg.corpus, tokenizer, Path(cfg.cache_dir) if cfg.cache_dir else out / "data", progress=cfg.progress and accelerator.is_main_process,
                                  max_docs=cfg.max_docs)
    mode = "nsp" if cfg.nsp else ("packed" if cfg.packing else "document")
    examples = make_examples(cache, cfg.max_length, mode=mode, seed=cfg.seed)
    n_examples = len(examples)
    if n_examples == 0:
        raise BlurbkitError("the corpus is too small to make one training sequence")
    global_batch = cfg.batch_size * world
    per_step = global_batch * cfg.grad_accum
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * n_examples / per_step))
    warmup = int(cfg.warmup) if cfg.warmup >= 1 else int(round(cfg.warmup * total_steps))

    wrapper = _pretraining_module(model, cfg.nsp)
    decay, no_decay = [], []
    for name, param in wrapper.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(param)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    signature = {"model_config": _config_digest(model.config), "tokenizer": cache.meta["tokenizer"],
                 "corpus": cache.meta["corpus"], "examples": n_examples, "mode": mode, "max_length": cfg.max_length,
                 "global_batch": global_batch, "grad_accum": cfg.grad_accum, "seed": cfg.seed,
                 "total_steps": total_steps}

    step, epoch, offset = 0, 0, 0
    ckpt_root = out / "checkpoints"
    resumed_from = None
    if cfg.resume:
        found = ckpt.latest_checkpoint(ckpt_root)
        if found is not None:
            state = ckpt.load_checkpoint(found, model=wrapper, optimizer=optimizer, scheduler=scheduler, rank=rank,
                                         signature=signature)
            step, epoch, offset = state["step"], state["epoch"], state["offset"]
            resumed_from = str(found)
        elif ckpt_root.is_dir() and any(ckpt_root.glob("step-*")):
            raise BlurbkitError("checkpoints exist but none reads back; remove them or pass --no-resume", path=ckpt_root)
    elif ckpt_root.is_dir() and accelerator.is_main_process:
        import shutil

        shutil.rmtree(ckpt_root, ignore_errors=True)

    wrapper, optimizer = accelerator.prepare(wrapper, optimizer)
    collate = Collator(tokenizer, cache, cfg.max_length, cfg.seed)
    masking = MaskingConfig(rate=cfg.mask_rate, whole_word=cfg.masking == "whole-word")
    log_path = out / "train_log.jsonl"
    if accelerator.is_main_process:
        kept_lines = []
        if resumed_from and log_path.is_file():
            for line in log_path.read_text("utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= step:
                        kept_lines.append(line)
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        log_path.write_text("".join(line + "\n" for line in kept_lines), "utf-8")

    perm_cache: dict[int, np.ndarray] = {}

    def permutation(ep: int) -> np.ndarray:
        if ep not in perm_cache:
            perm_cache.clear()
            perm_cache[ep] = np.random.default_rng([cfg.seed, ep, 1]).permutation(n_examples)
        return perm_cache[ep]

    def next_indices() -> tuple[np.ndarray, int]:
        nonlocal epoch, offset
        take: list[np.ndarray] = []
        need = global_batch
        ep_of_batch = epoch
        while need:
            perm = permutation(epoch)
            chunk = perm[offset : offset + need]
            take.append(chunk)
            need -= len(chunk)
            offset += len(chunk)
            if offset >= n_examples:
                epoch, offset = epoch + 1, 0
        indices = np.concatenate(take)
        return indices[rank * cfg.batch_size : (rank + 1) * cfg.batch_size], ep_of_batch

    def save(at_step: int) -> None:
        states = gather_object([(rank, {k: v.numpy() for k, v in ckpt.rng_state().items()})])
        if accelerator.is_main_process:
            rng_states = {r: {k: torch.from_numpy(np.asarray(v)) for k, v in s.items()} for r, s in states}
            ckpt.save_checkpoint(ckpt_root, at_step, model=accelerator.unwrap_model(wrapper), optimizer=optimizer,
                                 scheduler=scheduler, rng_states=rng_states, keep=cfg.keep_checkpoints,
                                 state={"epoch": epoch, "offset": offset, "signature": signature})
        accelerator.wait_for_everyone()

    bar = None
    if cfg.progress and accelerator.is_main_process:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, desc="pretrain", unit="step", mininterval=1.0)
    start_time = time.time()
    tokens_seen = 0
    window_loss: list[float] = []
    window_mlm: list[float] = []
    window_nsp: list[float] = []
    window_tokens = 0
    window_start = time.time()
    ema = None
    stopped = "finished"
    wrapper.train()
    speedups = ExitStack()  # CPU only: fast dropout masks and bf16 training attention (runtime/dropout.py)
    masks = None
    if accelerator.device.type == "cpu":
        if cfg.tune_allocator:
            tune_allocator()
        masks = speedups.enter_context(fast_dropout(model, [cfg.seed, rank, step]))
        speedups.enter_context(cpu_attention(model))
    try:
        while step < total_steps:
            if masks is not None:
                masks.reseed([cfg.seed, rank, step])  # per-step streams: a resumed run draws the same masks
            rate = mask_rate_at(step, total_steps, cfg.mask_schedule, cfg.mask_rate)
            step_loss = 0.0
            for micro in range(cfg.grad_accum):
                local, ep = next_indices()
                batch = collate(examples[local], local, ep, masking, rate)
                n_tok = int(batch["attention_mask"].sum()) * world
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                sync = micro == cfg.grad_accum - 1
                ctx = accelerator.no_sync(wrapper) if (not sync and world > 1) else _null()
                with ctx:
                    loss, mlm, nsp = wrapper(**batch)
                    accelerator.backward(loss / cfg.grad_accum)
                step_loss += float(loss.detach()) / cfg.grad_accum
                window_mlm.append(float(mlm))
                if nsp is not None:
                    window_nsp.append(float(nsp))
                tokens_seen += n_tok
                window_tokens += n_tok
            if cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(wrapper.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_loss.append(step_loss)
            ema = step_loss if ema is None else 0.98 * ema + 0.02 * step_loss
            elapsed = time.time() - start_time
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{tokens_seen / max(elapsed, 1e-9):.0f}",
                                lr=f"{scheduler.get_last_lr()[0]:.2e}", mask=f"{rate:.2f}", refresh=False)
            if accelerator.is_main_process and (step % cfg.log_every == 0 or step == total_steps):
                now = time.time()
                entry = {"step": step, "loss": float(np.mean(window_loss)), "mlm_loss": float(np.mean(window_mlm)),
                         "lr": scheduler.get_last_lr()[0], "mask_rate": rate, "epoch": epoch,
                         "tokens_per_s": window_tokens / max(now - window_start, 1e-9), "elapsed_s": now - start_time,
                         "tokens": tokens_seen}
                if window_nsp:
                    entry["nsp_loss"] = float(np.mean(window_nsp))
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")
                window_loss, window_mlm, window_nsp, window_tokens, window_start = [], [], [], 0, now
            out_of_time = cfg.max_minutes is not None and elapsed > cfg.max_minutes * 60
            interrupted = cfg.stop_after is not None and step >= cfg.stop_after and step < total_steps
            if step % cfg.save_every == 0 or step == total_steps or out_of_time or interrupted:
                save(step)
            if out_of_time and step < total_steps:
                stopped = "time budget"
                break
            if interrupted:
                stopped = "interrupted"
                break
    finally:
        speedups.close()
    if bar is not None:
        bar.close()
    elapsed = time.time() - start_time
    summary = {"steps": step, "total_steps": total_steps, "stopped": stopped, "examples": n_examples,
               "corpus_tokens": cache.n_tokens, "tokens_processed_this_run": tokens_seen,
               "tokens_per_s": tokens_seen / max(elapsed, 1e-9), "seconds": elapsed, "world_size": world,
               "resumed_from": resumed_from, "warmup_steps": warmup, "main_process": accelerator.is_main_process, "config": {k: v for k, v in asdict(cfg).items()}}
    if accelerator.is_main_process and stopped != "interrupted":
        _finalize(out, accelerator.unwrap_model(wrapper).inner, tokenizer, summary)
        write_json(out / "pretrain_summary.json", summary)
    accelerator.wait_for_everyone()
    return summary


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
