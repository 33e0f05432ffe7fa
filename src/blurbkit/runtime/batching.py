"""Batches: length-grouped order for training (little padding), length-sorted for inference.

`collate` pads a list of examples; `PaddedSplit` does it once for a whole split (pre-tensorised),
so a batch is a row gather cut to its longest row, with no per-example Python in the loop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

Example = dict  # an encoder-ready example (models/transforms.py)


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


def shuffled_batches(size: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Plain shuffled batches (what a default DataLoader does): padding to each batch's longest."""
    order = list(range(size))
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, size, batch_size)]


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
        dtype = torch.float if isinstance(value, float | list) else torch.long
        batch["labels"] = torch.tensor([ex["labels"] for ex in examples], dtype=dtype)
    if "entity_spans" in examples[0]:
        batch["entity_spans"] = torch.tensor([ex["entity_spans"][:2] for ex in examples], dtype=torch.long)
    return batch


SEQUENCE_FIELDS = ("input_ids", "attention_mask", "token_type_ids")
WORD_FIELDS = ("word_positions", "word_mask")


class PaddedSplit:
    """Every example of a split padded once (by `collate`, so batches equal `collate`'s)."""

    def __init__(self, examples: Sequence[Example], pad_id: int) -> None:
        self.size = len(examples)
        padded = collate(examples, pad_id) if examples else {}
        # Kept as int32 (half the memory of a long split); widened per batch to collate's dtypes.
        self.dtypes = {name: values.dtype for name, values in padded.items()}
        self.full = {name: values.int() if values.dtype == torch.long else values for name, values in padded.items()}
        self.lengths = torch.tensor([len(ex["input_ids"]) for ex in examples], dtype=torch.long)
        self.words = None
        if examples and "word_positions" in examples[0]:
            self.words = torch.tensor([len(ex["word_positions"]) for ex in examples], dtype=torch.long)

    def __len__(self) -> int:
        return self.size

    def padded_tokens(self, batches: Sequence[Sequence[int]]) -> int:
        """Token positions `batches` compute: rows x the longest row, summed."""
        return sum(len(rows) * int(self.lengths[list(rows)].max()) for rows in batches if len(rows))

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        length = int(self.lengths[rows].max())
        words = max(1, int(self.words[rows].max())) if self.words is not None else 0
        batch = {}
        for name, values in self.full.items():
            values = values.index_select(0, rows)
            if name in SEQUENCE_FIELDS:
                values = values[:, :length]
            elif name in WORD_FIELDS or (name == "labels" and self.words is not None):
                values = values[:, :words]
            batch[name] = values.to(self.dtypes[name]).contiguous()
        return batch


def iterate(examples: Sequence[Example], batches: list[list[int]], pad_id: int) -> Iterator[tuple[list[int], dict]]:
    for indices in batches:
        yield indices, collate([examples[i] for i in indices], pad_id)
