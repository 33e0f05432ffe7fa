"""Featurizers: turn the encoder's last hidden states into what a Predict head consumes.

A featurizer is an nn.Module built by name with ``(hidden_size, **options)``; it exposes
``out_size`` and ``forward(hidden, batch) -> (features, mask)`` where ``mask`` is None for
sequence-level features and a bool [batch, words] mask for word-level ones. An optional
``rows(batch)`` names every position of ``hidden`` that forward reads ([batch, P]), so inference
can compute the last encoder layer for those rows only (models/last_layer.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from blurbkit.registry import Registry

FEATURIZERS: Registry[type[nn.Module]] = Registry("featurizer")


@FEATURIZERS.register("cls")
class ClsFeaturizer(nn.Module):
    """The [CLS] encoding (the BLURB default for every sequence-level task)."""

    requires = ("sequence",)

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        return hidden[:, 0], None

    def rows(self, batch: dict) -> torch.Tensor:
        return batch["input_ids"].new_zeros(batch["input_ids"].size(0), 1)


@FEATURIZERS.register("cls_pooler")
class ClsPoolerFeaturizer(nn.Module):
    """tanh(W [CLS] + b), W and b the pretrained encoder's pooler (the layer next-sentence prediction
    trains, which Hugging Face's BertForSequenceClassification classifies from, as the published
    BLURB fine-tuning code did); a fresh layer when the checkpoint has none (`source` says which)."""

    requires = ("sequence",)

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.source = "new"

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        return torch.tanh(self.dense(hidden[:, 0])), None

    def rows(self, batch: dict) -> torch.Tensor:
        return batch["input_ids"].new_zeros(batch["input_ids"].size(0), 1)

    def notes(self) -> list[str]:
        """What a run's notes should say about this part (the run reads any featurizer's `notes`)."""
        if self.source == "new":
            return ["the encoder's checkpoint has no pooler: cls_pooler's layer starts from random values"]
        return []

    def from_checkpoint(self, model_dir: Path) -> None:
        """The pooler's weights from the encoder's safetensors (the bare encoder is loaded without it)."""
        from safetensors import safe_open

        for path in sorted(Path(model_dir).glob("*.safetensors")):
            with safe_open(str(path), "pt") as weights:
                names = {key.rsplit("pooler.dense.", 1)[-1]: key for key in weights.keys() if "pooler.dense." in key}  # noqa: SIM118 (not a dict)
                if {"weight", "bias"} <= names.keys():
                    with torch.no_grad():
                        self.dense.weight.copy_(weights.get_tensor(names["weight"]))
                        self.dense.bias.copy_(weights.get_tensor(names["bias"]))
                    self.source = "pretrained"
                    return


@FEATURIZERS.register("mean")
class MeanFeaturizer(nn.Module):
    """The mean of every non-padding position's encoding, [CLS] and [SEP] included: the pooling that
    sentence-embedding encoders (sentence-transformers, e.g. the default MiniLM) were trained with,
    where [CLS] alone was never a training target."""

    requires = ("sequence",)

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1), None


@FEATURIZERS.register("first_subword")
class FirstSubwordFeaturizer(nn.Module):
    """Each word's first-subword encoding, gathered into a [batch, words, hidden] tensor."""

    requires = ("token",)

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__()
        self.out_size = hidden_size

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        positions = batch["word_positions"]  # [B, W], padded with 0
        mask = batch["word_mask"]
        index = positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        return torch.gather(hidden, 1, index), mask

    def rows(self, batch: dict) -> torch.Tensor:
        return batch["word_positions"]
