"""Batches: length-grouped order for training (little padding), length-sorted for inference."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from blurbkit.models.transforms import Example


def grouped_batches(examples: Sequence[Example], batch_size: int, rng: random.Random, group: int = 50) -> list[list[int]]:
    """Shuffle, sort within groups of `group` batches by length, then shuffle the batches:
    random like plain shuffling at the epoch scale, padded like sorted data at the batch scale."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * group
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: len(examples[i]["input_ids"]))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(examples: Sequence[Example], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """Inference batches by length, capped by a token budget (padded length x rows)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        length = len(examples[index]["input_ids"])
        if current and (len(current) + 1) * length > max_tokens or len(current) >= max_batch:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of examples into tensors (only the fields the examples have)."""
    size = len(examples)
    length = max(len(ex["input_ids"]) for ex in examples)
    input_ids = torch.full((size, length), pad_id, dtype=torch.long)
    attention = torch.zeros((size, length), dtype=torch.long)
    has_types = "token_type_ids" in examples[0]
    token_types = torch.zeros((size, length), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex["input_ids"])
        input_ids[row, :n] = torch.tensor(ex["input_ids"])
        attention[row, :n] = 1
        if has_types:
            token_types[row, :n] = torch.tensor(ex["token_type_ids"])
    batch = {"input_ids": input_ids, "attention_mask": attention}
    if has_types:
        batch["token_type_ids"] = token_types
    if "word_positions" in examples[0]:
        words = max(1, max(len(ex["word_positions"]) for ex in examples))
        positions = torch.zeros((size, words), dtype=torch.long)
        mask = torch.zeros((size, words), dtype=torch.bool)
        labels = torch.zeros((size, words), dtype=torch.long)
        for row, ex in enumerate(examples):
            n = len(ex["word_positions"])
            positions[row, :n] = torch.tensor(ex["word_positions"], dtype=torch.long)
            mask[row, :n] = True
            if "labels" in ex:
                labels[row, :n] = torch.tensor(ex["labels"], dtype=torch.long)
        batch.update(word_positions=positions, word_mask=mask)
        if "labels" in examples[0]:
            batch["labels"] = labels
    elif "labels" in examples[0]:
        value = examples[0]["labels"]
        dtype = torch.float if isinstance(value, float) or isinstance(value, list) else torch.long
        batch["labels"] = torch.tensor([ex["labels"] for ex in examples], dtype=dtype)
    if "entity_spans" in examples[0]:
        batch["entity_spans"] = torch.tensor([ex["entity_spans"][:2] for ex in examples], dtype=torch.long)
    return batch


def iterate(examples: Sequence[Example], batches: list[list[int]], pad_id: int) -> Iterator[tuple[list[int], dict]]:
    for indices in batches:
        yield indices, collate([examples[i] for i in indices], pad_id)
