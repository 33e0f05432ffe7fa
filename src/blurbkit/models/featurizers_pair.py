"""A bi-encoder (siamese) featurizer for sentence pairs: each sentence encoded on its own.

The BLURB recipe encodes a pair jointly, [CLS] s1 [SEP] s2 [SEP], and reads [CLS] (a cross-encoder).
Sentence-embedding encoders such as the default MiniLM were instead trained to embed each sentence
alone, mean-pool it, and compare the two vectors by cosine; cross-encoding them throws that training
away. (Each sentence is exactly as it would be alone when the pair fits max_length; a longer pair is
cut by the joint transform's longest-first truncation first.) This featurizer keeps the joint transform's examples (so caching, batching and length sorting
stay as they are) and, through ``encoder_inputs``, turns each pair row into two encoder rows:
[CLS] s1 [SEP] and [CLS] s2 [SEP], both with segment id 0 and positions from 0, as each sentence was
seen in pretraining. Its features are the two mean-pooled embeddings, [batch, 2, hidden], which only a
head that reads pairs (``heads_pair.py``'s ``cosine``) accepts.
"""

from __future__ import annotations

import torch
from torch import nn

from blurbkit.errors import BlurbkitError
from blurbkit.models.featurizers import FEATURIZERS


def pair_masks(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool masks over the joint rows' positions: the first sentence's ([CLS] s1 [SEP]) and the
    second's (s2 [SEP]), read from the segment ids."""
    if "token_type_ids" not in batch:
        raise BlurbkitError("featurizer siamese_mean needs segment ids (token_type_ids) to split each pair; "
                            "this tokenizer gives none")
    attended = batch["attention_mask"].bool()
    second = batch["token_type_ids"] == 1
    # Even an empty second sentence has its [SEP] in segment 1: a row without any is not a pair row.
    if not bool(second.any(1).all()):
        raise BlurbkitError("featurizer siamese_mean needs segment ids that mark the second sentence "
                            "(token_type_ids 1); this tokenizer gives none for pairs")
    return attended & ~second, attended & second


@FEATURIZERS.register("siamese_mean")
class SiameseMeanFeaturizer(nn.Module):
    """Each sentence of a pair encoded alone and mean-pooled (as sentence-transformers does): features
    [batch, 2, hidden] = (u, v) for a pair head."""

    requires = ("text_pair",)
    features = "pair"  # what a head must read (models/build.py checks the two fit)

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size

    def encoder_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """[B, L] joint rows -> [2B, L] rows: the B first sentences, then the B second ones, each
        [CLS] s [SEP] from position 0 (the second one shifted left under a copy of the row's [CLS])."""
        first, second_mask = sentence_masks(inputs)
        ids = inputs["input_ids"]
        width = first.size(1)  # the longest single sentence: about half the joint rows' padded length
        positions = torch.arange(width, device=ids.device).unsqueeze(0)
        # Row j of the second sentence is joint position first_len + j - 1 (j >= 1); j = 0 is [CLS].
        source = (first.sum(1, keepdim=True) + positions - 1).clamp(0, ids.size(1) - 1)
        second_ids = ids.gather(1, source)
        second_ids[:, 0] = ids[:, 0]
        return {
            "input_ids": torch.cat([ids[:, :width], second_ids]),
            "attention_mask": torch.cat([first, second_mask]).to(inputs["attention_mask"].dtype),
            "token_type_ids": torch.zeros((2 * ids.size(0), width), dtype=ids.dtype, device=ids.device),
        }

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        first, second_mask = sentence_masks(batch)
        rows = hidden.size(0) // 2
        return torch.stack([_mean(hidden[:rows], first), _mean(hidden[rows:], second_mask)], dim=1), None


def sentence_masks(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sentences' attention masks over the encoder rows of ``encoder_inputs``: [B, W] each,
    W the longest of them ([CLS] s1 [SEP] as it sits in the joint row; [CLS] s2 [SEP] shifted to 0)."""
    first, second = pair_masks(batch)
    second_lengths = second.sum(1, keepdim=True) + 1  # + the copied [CLS]
    width = int(max(first.sum(1).max(), second_lengths.max()))
    positions = torch.arange(width, device=first.device).unsqueeze(0)
    return first[:, :width], positions < second_lengths


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
