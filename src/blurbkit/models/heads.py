"""Predict heads: the last stage. Built by name with ``(in_size, num_labels, dropout, **options)``.

``forward(features, mask) -> scores``; ``loss(scores, labels, mask)``; ``predict(scores, mask)``
returns plain Python values (label indices, floats, index lists for multi-label). Heads work
on sequence-level [B, H] features and on word-level [B, W, H] features with a mask.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from blurbkit.registry import Registry

HEADS: Registry[type[nn.Module]] = Registry("head")


class _LinearHead(nn.Module):
    def __init__(self, in_size: int, num_labels: int, dropout: float = 0.1, **_: object) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_size, num_labels)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(self.dropout(features))


@HEADS.register("softmax")
class SoftmaxHead(_LinearHead):
    """Linear layer + softmax, cross-entropy (classification; word-level for tagging)."""

    requires = ("single_label",)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            return F.cross_entropy(scores[mask].float(), labels[mask])
        return F.cross_entropy(scores.float(), labels)

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        best = scores.argmax(-1)
        if mask is None:
            return best.tolist()
        return [row[: int(m.sum())].tolist() for row, m in zip(best, mask, strict=True)]


@HEADS.register("regression")
class RegressionHead(_LinearHead):
    """One linear output, mean-squared error (sentence similarity)."""

    requires = ("score",)

    def __init__(self, in_size: int, num_labels: int = 1, dropout: float = 0.1, **options: object) -> None:
        super().__init__(in_size, 1, dropout)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.mse_loss(scores.squeeze(-1).float(), labels.float())

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        return scores.squeeze(-1).float().tolist()

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        return scores  # a score, not a distribution: returned as is


@HEADS.register("sigmoid")
class SigmoidHead(_LinearHead):
    """One sigmoid per label, binary cross-entropy each (multi-label document classification)."""

    requires = ("multi_label",)
    outputs = "independent"  # one Bernoulli per label (adversarial training's divergence reads it)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(scores.float(), labels.float())

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        return [torch.nonzero(row > 0).flatten().tolist() for row in scores]

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.sigmoid()  # independent labels: one probability each
