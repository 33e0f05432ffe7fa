"""Relation encodings beyond [CLS]: built from the pair's two entity token spans.

``batch["entity_spans"]`` is a [batch, 2, 2] tensor of token [start, end) spans (entity 1, then
entity 2) that the text transforms compute from the records' character spans: the placeholders
under dummification, the mentions in the original text, marker to marker with entity markers.
"""

from __future__ import annotations

import torch
from torch import nn

from blurbkit.errors import BlurbkitError
from blurbkit.models.featurizers import FEATURIZERS


def entity_spans(batch: dict, length: int) -> torch.Tensor:
    spans = batch.get("entity_spans")
    if spans is None:
        raise BlurbkitError("this relation encoding needs the entities' spans, but the input transform gives none")
    # Keep every span inside the sequence and at least one token long.
    start = spans[..., 0].clamp(0, length - 1)
    end = torch.maximum(spans[..., 1].clamp(max=length), start + 1)
    return torch.stack([start, end], dim=-1)


@FEATURIZERS.register("mention_pool")
class MentionPoolFeaturizer(nn.Module):
    """Max-pooled encodings of each entity's tokens, concatenated: [e1; e2]."""

    requires = ("sequence", "entity_pair")

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = 2 * hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        spans = entity_spans(batch, hidden.size(1))
        positions = torch.arange(hidden.size(1), device=hidden.device)
        pooled = []
        for entity in range(2):
            start, end = spans[:, entity, 0:1], spans[:, entity, 1:2]
            inside = (positions >= start) & (positions < end)  # [B, T]
            masked = hidden.masked_fill(~inside.unsqueeze(-1), torch.finfo(hidden.dtype).min)
            pooled.append(masked.max(dim=1).values)
        return torch.cat(pooled, dim=-1), None


@FEATURIZERS.register("entity_start")
class EntityStartFeaturizer(nn.Module):
    """The encodings of each entity's first token, concatenated: the [E1]/[E2] markers with
    the marker input, the placeholders' or mentions' first subword otherwise."""

    requires = ("sequence", "entity_pair")

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = 2 * hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        starts = self.rows(batch)  # [B, 2]
        index = starts.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        return torch.gather(hidden, 1, index).flatten(1), None

    def rows(self, batch: dict) -> torch.Tensor:
        return entity_spans(batch, batch["input_ids"].size(1))[..., 0]
