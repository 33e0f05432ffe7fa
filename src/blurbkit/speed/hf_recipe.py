"""The plain Hugging Face Trainer recipes blurbkit is measured against.

Token classification as in transformers' run_ner example: AutoModelForTokenClassification,
words tokenised with is_split_into_words, the first subword of each word carries its label
(the others -100), DataCollatorForTokenClassification (dynamic padding), random batch order.
Sequence classification as in run_glue: AutoModelForSequenceClassification with
DataCollatorWithPadding. Trainer defaults otherwise (fp32, its default fused AdamW, gradient
clipping at 1.0, no length grouping, no compile); warm-up over the first 10% of steps and linear
decay, like blurbkit. Predictions are mapped back to words (first subword) or labels and scored
with blurbkit's official metric code, so both sides are scored the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.models.transforms import TransformContext, _single_text


@dataclass
class HFRun:
    trainer: Any
    train_seconds: float
    labels: list[str]
    train_cpu_seconds: float = 0.0  # CPU time of the process during trainer.train() (all its threads)


def token_features(records: Sequence[dict], tokenizer: Any, labels: list[str]) -> tuple[list[dict], list[list[tuple[int, int]]]]:
    """run_ner's tokenize_and_align_labels: the label on each word's first subword, -100 elsewhere.
    Also returns, per record, the (position, word) pairs of first subwords, to map predictions back."""
    encoded = tokenizer([list(r["tokens"]) for r in records], is_split_into_words=True, truncation=True)
    index = {tag: i for i, tag in enumerate(labels)}
    features, firsts = [], []
    for row, record in enumerate(records):
        previous, aligned, starts = None, [], []
        for position, word in enumerate(encoded.word_ids(row)):
            if word is None or word == previous:
                aligned.append(-100)
            else:
                aligned.append(index[record["tags"][word]])
                starts.append((position, word))
            previous = word
        features.append({"input_ids": encoded["input_ids"][row], "attention_mask": encoded["attention_mask"][row], "labels": aligned})
        firsts.append(starts)
    return features, firsts


def sequence_features(records: Sequence[dict], tokenizer: Any, labels: list[str], max_length: int) -> list[dict]:
    """One [CLS] text [SEP] input per record (entity-dummified text for relations), truncated."""
    examples = _single_text(records, TransformContext(tokenizer, max_length), "text")
    index = {label: i for i, label in enumerate(labels)}
    return [
        {"input_ids": ex["input_ids"], "attention_mask": [1] * len(ex["input_ids"]), "labels": index[str(r["label"])]}
        for ex, r in zip(examples, records, strict=True)
    ]


def train(model_dir: Path, task: str, features: list[dict], labels: list[str], *, batch_size: int, lr: float,
          epochs: int, seed: int, weight_decay: float, progress: bool, workdir: str) -> HFRun:
    """Fine-tune with the Trainer; `train_seconds` is the wall time of `trainer.train()`. The Trainer's
    output folder is `workdir` (the caller's temporary folder: nothing is saved there, but it is made)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report lists the new classifier: expected

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    auto = AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
    collator = DataCollatorForTokenClassification(tokenizer) if task == "token" else DataCollatorWithPadding(tokenizer)
    model = auto.from_pretrained(
        str(model_dir), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, use_safetensors=True,
    )
    args = TrainingArguments(
        output_dir=workdir,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=lr,
        num_train_epochs=epochs,
        warmup_steps=0.1,
        weight_decay=weight_decay,
        seed=seed,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=not progress,
    )
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # it prints the metrics dict on stdout: ours is the JSON line
    started, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    return HFRun(trainer, time.perf_counter() - started, labels, time.process_time() - cpu)


def predict(run: HFRun, task: str, records: Sequence[dict], features: list[dict], firsts: list | None = None) -> Any:
    """Predictions in blurbkit's evaluate format: word tags (first subword) or id -> label."""
    logits = run.trainer.predict(features).predictions
    best = np.argmax(logits, -1)
    if task != "token":
        return {str(r["id"]): run.labels[int(i)] for r, i in zip(records, best, strict=True)}
    predictions = []
    for row, record in enumerate(records):
        tags = ["O"] * len(record["tokens"])  # a word cut off by truncation stays O
        for position, word in firsts[row]:
            tags[word] = run.labels[int(best[row, position])]
        predictions.append(tags)
    return predictions
