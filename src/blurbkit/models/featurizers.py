"""Featurizers: turn the encoder's last hidden states into what a Predict head consumes.

A featurizer is an nn.Module built by name with ``(hidden_size, **options)``; it exposes
``out_size`` and ``forward(hidden, batch) -> (features, mask)`` where ``mask`` is None for
sequence-level features and a bool [batch, words] mask for word-level ones.
"""

from __future__ import annotations

import torch
from torch import nn

from blurbkit.registry import Registry

FEATURIZERS: Registry[type[nn.Module]] = Registry("featurizer")


@FEATURIZERS.register("cls")
class ClsFeaturizer(nn.Module):
    """The [CLS] encoding (the BLURB default for every sequence-level task)."""

    task_types = ("relation", "similarity", "doc_classification", "qa")

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        return hidden[:, 0], None


@FEATURIZERS.register("first_subword")
class FirstSubwordFeaturizer(nn.Module):
    """Each word's first-subword encoding, gathered into a [batch, words, hidden] tensor."""

    task_types = ("ner", "pico")

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        positions = batch["word_positions"]  # [B, W], padded with 0
        mask = batch["word_mask"]
        index = positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        return torch.gather(hidden, 1, index), mask
