"""`blurbkit bench pretrain`: the Hugging Face masked-LM recipe a user would otherwise run
(``BertForMaskedLM`` + whole-word ``DataCollatorForLanguageModeling`` + ``Trainer``) and blurbkit's
pretraining on the same work, in one process and one run.

Same tokenizer, same corpus slice, same packed sequences (blurbkit's token cache: ``[CLS] window
[SEP]`` of ``max_length`` tokens; the Trainer side gets them as ``input_ids`` plus the offsets a
fast tokenizer would give, so its collator finds the same words), same model config and seed, batch,
steps, learning rate, warm-up and AdamW settings. Timed: the training loop only (the Trainer's
``train()`` call; blurbkit's log up to its last step, before the final checkpoint), corpus
tokenisation excluded on both sides. The Trainer side runs as the recipe does, in fp32; blurbkit
in its default precision (``auto``: bf16 where runtime/capability.py says it is native).

The two sides do not train on the same masking task: transformers' whole-word collator picks each
*word* with the mask rate (more than that share of subwords) and turns every picked piece into
[MASK]; blurbkit picks 15 % of the subwords by whole words and keeps BERT's 80/10/10 (the 10 % kept
unchanged are nearly free to predict). Their training losses therefore differ by construction, so
the comparison of what they learned is a held-out loss: both trained models score the same
sequences the training steps never read, masked once by whole words at the mask rate, every masked
piece [MASK], in fp32.

MFU counts the same model FLOPs for both sides (useful work: the encoder over every token and the
MLM head over the masked ones, x3 for training), against the measured matmul peak of the dtype each
side ran in.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.models.flops import masked_lm_training_flops
from blurbkit.speed.machine import machine_info, measure_peaks, peak_of, release_memory, same_threads


def mlm_training_flops(config: Any, length: int, sequences: int, mask_rate: float) -> float:
    """Model FLOPs of `sequences` MLM training sequences of `length` tokens."""
    return sequences * masked_lm_training_flops(config, length, mask_rate * length)


def _features(collate: Any, rows: np.ndarray) -> list[dict[str, Any]]:
    """The packed windows as Trainer features: ids, special-token mask and offsets in which a
    ``##`` piece touches the previous piece and any other piece starts after a gap (the word
    boundaries the whole-word collator reads from a fast tokenizer's offsets)."""
    features = []
    for row in rows:
        ids, _ = collate.sequence(row)
        special = collate.special[ids]
        offsets, position = [], 0
        for token, is_special in zip(ids, special, strict=True):
            if is_special:
                offsets.append((0, 0))
                continue
            start = position if collate.continuation[token] else position + 1
            offsets.append((start, start + 1))
            position = start + 1
        features.append({"input_ids": ids.tolist(), "special_tokens_mask": special.astype(int).tolist(),
                         "offset_mapping": offsets})
    return features


def _last_losses(values: list[float], window: int) -> float:
    return float(np.mean(values[-window:]))


HELDOUT_SEED = 1  # the held-out masks' seed: not any training step's


def heldout_batches(tokenizer: Any, cache: Any, max_length: int, examples: np.ndarray, indices: np.ndarray,
                    mask_rate: float, batch_size: int) -> list[dict[str, Any]]:
    """The held-out sequences masked once, the same for both sides: whole words at `mask_rate`, every
    masked piece [MASK]; labels in the Hugging Face form (-100 where nothing is predicted)."""
    from blurbkit.pretrain.data import Collator, MaskingConfig

    fixed = Collator(tokenizer, cache, max_length, HELDOUT_SEED)
    masking = MaskingConfig(rate=mask_rate, whole_word=True, mask_fraction=1.0, random_fraction=0.0)
    batches = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        batch = fixed(examples[chunk], chunk, 0, masking, mask_rate)
        labels = batch["input_ids"].new_full(batch["input_ids"].shape, -100).reshape(-1)
        labels[batch["masked_index"]] = batch["mlm_labels"]
        batches.append({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                        "token_type_ids": batch["token_type_ids"], "labels": labels.view_as(batch["input_ids"])})
    return batches


def heldout_loss(model: Any, batches: list[dict[str, Any]]) -> float | None:
    """Mean cross-entropy over every masked piece of the held-out batches, the model in fp32 eval mode."""
    import torch

    if not batches:
        return None
    model = model.float().eval()
    device = next(model.parameters()).device  # the Trainer moves its model to the GPU
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in batches:
            n = int((batch["labels"] != -100).sum())
            total += float(model(**{k: v.to(device) for k, v in batch.items()}).loss) * n
            count += n
    return total / count if count else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def run_hf(config: Any, tokenizer: Any, features: list[dict[str, Any]], *, batch_size: int, steps: int, lr: float,
           warmup: float, seed: int, mask_rate: float, out: Path) -> dict[str, Any]:
    import torch
    from transformers import (
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(seed)
    model = BertForMaskedLM(config)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, whole_word_mask=True, mlm_probability=mask_rate)
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
        warmup_steps=int(round(warmup * steps)), weight_decay=0.01, adam_beta2=0.98, adam_epsilon=1e-6,
        lr_scheduler_type="linear", logging_steps=1, save_strategy="no", report_to=[], seed=seed,
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
        remove_unused_columns=False,  # the collator reads offset_mapping (whole words), the model does not
    )
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints each step's log on stdout, timed: ours is the JSON line
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"seconds": seconds, "losses": losses, "precision": "fp32", "model": trainer.model}


def run_blurbkit(corpus: list[str], tokenizer_dir: str, preset: str, *, max_docs: int | None, max_length: int,
                 batch_size: int, steps: int, lr: float, warmup: float, seed: int, mask_rate: float, cache_dir: Path,
                 out: Path) -> dict[str, Any]:
    from blurbkit.pretrain.config import PretrainConfig
    from blurbkit.pretrain.trainer import pretrain

    cfg = PretrainConfig(corpus=corpus, out=str(out), tokenizer=tokenizer_dir, from_scratch=preset, max_length=max_length,
                         batch_size=batch_size, max_steps=steps, lr=lr, warmup=warmup, seed=seed, mask_rate=mask_rate,
                         log_every=1, save_every=steps, keep_checkpoints=1, max_docs=max_docs, cache_dir=str(cache_dir),
                         progress=False)
    summary = pretrain(cfg)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text("utf-8").splitlines()]
    from transformers import BertForMaskedLM

    return {"seconds": log[-1]["elapsed_s"], "tokens": log[-1]["tokens"], "losses": [e["mlm_loss"] for e in log],
            "summary": summary, "model": BertForMaskedLM.from_pretrained(str(out), use_safetensors=True)}


def bench_pretrain(corpus: list[str], tokenizer: str = "default", preset: str = "tiny", max_docs: int | None = 2000,
                   max_length: int = 128, batch_size: int = 32, steps: int = 30, lr: float = 6e-4, warmup: float = 0.1,
                   seed: int = 0, mask_rate: float = 0.15, loss_window: int = 5, peak_seconds: float = 1.0,
                   peak_size: int = 2048, work_dir: str | None = None, heldout: int = 256) -> dict[str, Any]:
    import torch

    from blurbkit.models.loading import default_model_dir
    from blurbkit.pretrain.config import build_config
    from blurbkit.pretrain.data import Collator, make_examples
    from blurbkit.pretrain.loop_state import DataOrder
    from blurbkit.pretrain.token_cache import build_token_cache
    from blurbkit.pretrain.vocab import load_any_tokenizer
    from blurbkit.runtime.precision import autocast_dtype, dtype_name
    from blurbkit.train.provenance import library_versions

    same_threads()
    tokenizer_dir = str(default_model_dir()) if tokenizer == "default" else tokenizer
    tok = load_any_tokenizer(tokenizer_dir)
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_", dir=work_dir) as tmp:
        root = Path(tmp)
        cache = build_token_cache(corpus, tok, root / "cache", max_docs=max_docs)
        examples = make_examples(cache, max_length, mode="packed", seed=seed)
        config = build_config(preset, len(tok), max_length, tok)
        # The Trainer side reads the sequences blurbkit's first `steps` batches hold, in its own order.
        order = DataOrder(len(examples), seed, batch_size * steps, 0, 1)
        chosen, _ = order.next_batch()
        collate = Collator(tok, cache, max_length, seed)
        features = _features(collate, examples[np.sort(chosen)])
        unread = np.setdiff1d(np.arange(len(examples)), chosen)[:heldout]
        batches = heldout_batches(tok, cache, max_length, examples, unread, mask_rate, batch_size)
        result: dict[str, Any] = {
            "bench": "pretrain", "preset": preset, "parameters": None, "tokenizer": tokenizer, "corpus": corpus,
            "max_docs": max_docs, "corpus_tokens": cache.n_tokens, "sequences": len(examples), "max_length": max_length,
            "batch_size": batch_size, "steps": steps, "lr": lr, "mask_rate": mask_rate, "machine": machine_info(),
            "heldout_sequences": len(unread),
        }
        result["peak_gflops"], skipped = measure_peaks(peak_seconds, peak_size)
        if skipped:
            result["peak_skipped"] = skipped
        hf = run_hf(config, tok, features, batch_size=batch_size, steps=steps, lr=lr, warmup=warmup, seed=seed,
                    mask_rate=mask_rate, out=root / "hf")
        hf["heldout"] = heldout_loss(hf.pop("model"), batches)  # then the model goes, before blurbkit's side
        release_memory()
        ours = run_blurbkit(corpus, tokenizer_dir, preset, max_docs=max_docs, max_length=max_length, batch_size=batch_size,
                            steps=steps, lr=lr, warmup=warmup, seed=seed, mask_rate=mask_rate, cache_dir=root / "cache",
                            out=root / "blurbkit")
        ours["heldout"] = heldout_loss(ours.pop("model"), batches)
    # The peak again after both sides, the better of the two kept: on a shared machine one short
    # timing can land in someone else's burst (measured here once: bf16 below fp32, MFU above 1).
    after, _ = measure_peaks(peak_seconds, peak_size)
    result["peak_gflops"] = {name: max(value, after.get(name, 0.0)) for name, value in result["peak_gflops"].items()}
    from transformers import BertForMaskedLM

    result["parameters"] = sum(p.numel() for p in BertForMaskedLM(config).parameters())
    tokens = batch_size * steps * max_length  # packed windows: every sequence is max_length real tokens
    flops = mlm_training_flops(config, max_length, batch_size * steps, mask_rate)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ours_precision = dtype_name(autocast_dtype("auto", device) or torch.float32)
    for name, side, precision, side_tokens in (("trainer", hf, "fp32", tokens), ("blurbkit", ours, ours_precision, ours["tokens"])):
        dtype, peak = peak_of(result["peak_gflops"], precision)
        result[name] = {
            "tokens_per_s": round(side_tokens / side["seconds"], 1), "seconds": round(side["seconds"], 2),
            "precision": dtype, "mlm_loss_first": round(side["losses"][0], 4),
            f"mlm_loss_last{loss_window}": round(_last_losses(side["losses"], loss_window), 4),
            "mfu": round(flops / side["seconds"] / (peak * 1e9), 4) if peak else None, "mfu_peak": dtype,
            "heldout_mlm_loss": _rounded(side["heldout"]),
        }
    result["tokens_per_s_ratio"] = round(result["blurbkit"]["tokens_per_s"] / result["trainer"]["tokens_per_s"], 2)
    result["machine"]["load_average_end"] = machine_info()["load_average"]
    result["versions"] = {k: v for k, v in library_versions().items() if k in ("torch", "transformers", "accelerate", "blurbkit")}
    return result
