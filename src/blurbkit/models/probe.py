"""The layer probe (BERT-RE paper, Fig. 1/4): a scalar mix of a frozen encoder's layers 0..l,
then a small MLP and the task's own Predict head.

ScalarMix (ELMo; Tenney et al. 2019): mixed = gamma * sum_j softmax(w)_j * h_j over exactly l+1
layers, w and gamma learned. The probe reads per-layer features computed once from the frozen
encoder ([N, L+1, H]; analysis/probing.py), so it never touches the encoder's weights.
"""

from __future__ import annotations

import torch
from torch import nn

from blurbkit.models.heads import HEADS


class ScalarMix(nn.Module):
    """Softmax-normalised weights over `layers` layers and one scale gamma."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("a scalar mix needs at least one layer")
        self.weights = nn.Parameter(torch.zeros(layers))  # uniform mix at the start
        self.gamma = nn.Parameter(torch.ones(()))

    @property
    def layers(self) -> int:
        return self.weights.numel()

    def alphas(self) -> torch.Tensor:
        return torch.softmax(self.weights, dim=0)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """stacked: [B, layers, H] -> [B, H]."""
        if stacked.size(1) != self.layers:
            raise ValueError(f"scalar mix over {self.layers} layers got {stacked.size(1)}")
        return self.gamma * torch.einsum("l,blh->bh", self.alphas(), stacked)


class LayerProbe(nn.Module):
    """Scalar mix over layers 0..depth, an MLP (one hidden layer, ReLU), the task's head by name."""

    def __init__(self, depth: int, hidden_size: int, head: str, num_labels: int, mlp_size: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.depth = depth
        self.mix = ScalarMix(depth + 1)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_size), nn.ReLU(), nn.Dropout(dropout))
        self.head = HEADS.get(head)(mlp_size, max(1, num_labels), dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: [B, L+1, H] for every layer; the probe reads layers 0..depth only."""
        return self.head(self.mlp(self.mix(features[:, : self.depth + 1])))

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head.loss(self(features), labels)
