"""A head over two sentence embeddings (a siamese featurizer's [batch, 2, hidden]).

``cosine`` predicts the cosine similarity of the two embeddings and trains it with CoSENT (Su,
2022; sentence-transformers' CoSENTLoss): for every pair of examples (i, j) in a batch with gold
score y_i > y_j, a penalty when cos_i does not exceed cos_j,

    loss = log(1 + sum over y_i > y_j of exp(scale * (cos_j - cos_i))).

It depends only on the order of the gold scores, so it needs no mapping of the dataset's score range
(BIOSSES: 0-4) onto the cosine's, and it has no parameters: before any training the head already
scores the pretrained embeddings (a sentence encoder's zero-shot similarity). Predictions are
cosines in [-1, 1], not the dataset's units; Pearson correlation, the similarity metric, does not
depend on that scale.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from blurbkit.models.heads import HEADS


@HEADS.register("cosine")
class CosineHead(nn.Module):
    """Cosine of the two embeddings; CoSENT ranking loss over the batch (scale 20, as published)."""

    requires = ("score",)
    features = "pair"

    def __init__(self, in_size: int, num_labels: int = 1, dropout: float = 0.1, cosent_scale: float = 20.0,
                 **_: object) -> None:
        super().__init__()
        self.scale = float(cosent_scale)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.cosine_similarity(features[:, 0].float(), features[:, 1].float(), dim=-1).unsqueeze(-1)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        cos = scores.squeeze(-1).float() * self.scale
        gold = labels.float()
        later_minus_earlier = cos.unsqueeze(0) - cos.unsqueeze(1)  # [i, j] = cos_j - cos_i
        ranked = gold.unsqueeze(1) > gold.unsqueeze(0)  # [i, j]: i is the more similar pair
        terms = later_minus_earlier.masked_fill(~ranked, float("-inf")).flatten()
        return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)  # log(1 + sum exp(...))

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        return scores.squeeze(-1).float().tolist()

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        return scores  # a score, not a distribution
