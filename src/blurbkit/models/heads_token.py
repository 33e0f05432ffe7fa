"""Word-level Predict heads for NER/PICO beyond the linear default: CRF, BiLSTM and BiLSTM-CRF.

They follow the head interface of heads.py on [batch, words, in_size] features with a bool word
mask whose True entries form a prefix of each row (what the first_subword featurizer returns).
The CRF is pytorch-crf's (`torchcrf.CRF`): forward algorithm for the loss, Viterbi to decode.
Its loss is the negative log-likelihood averaged over words, so that its scale matches the
linear head's per-word cross-entropy under the same learning rate and gradient clipping.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from blurbkit.models.heads import HEADS


def _as_rows(best: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    return [row[: int(m.sum())].tolist() for row, m in zip(best, mask, strict=True)]


class BiLSTMEncoder(nn.Module):
    """A BiLSTM over the masked words only (packed: padding never reaches the recurrence)."""

    def __init__(self, in_size: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_size, hidden, batch_first=True, bidirectional=True)
        self.out_size = 2 * hidden

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(features.float(), lengths, batch_first=True, enforce_sorted=False)
        with torch.autocast(features.device.type, enabled=False):
            output, _ = self.lstm(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=features.size(1))
        return output


class CRFLayer(nn.Module):
    """torchcrf.CRF with blurbkit's masks: rows without any word are left out of loss and decoding.

    The transition scores are reparametrised as ``lr_scale * raw``: under Adam they then move
    ``lr_scale`` times faster than the encoder under the one learning rate. At BERT's 5e-5 they
    would otherwise hardly leave their random initialisation (the usual fix is a separate CRF
    learning rate; this keeps the engine's single one). Option ``crf_lr_scale`` (default 100).
    """

    NAMES = ("start_transitions", "end_transitions", "transitions")

    def __init__(self, num_labels: int, lr_scale: float = 100.0) -> None:
        super().__init__()
        from torchcrf import CRF

        self.crf = CRF(num_labels, batch_first=True)
        self.scale = float(lr_scale)
        for name in self.NAMES:  # move torchcrf's parameters here; it reads plain tensors
            raw = getattr(self.crf, name).detach() / self.scale
            delattr(self.crf, name)
            self.register_parameter(name, nn.Parameter(raw))

    def _bind(self) -> None:
        for name in self.NAMES:
            setattr(self.crf, name, getattr(self, name) * self.scale)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows = mask[:, 0]  # torchcrf needs every sequence's first step on: drop empty rows
        if not rows.any():
            return scores.sum() * 0.0
        self._bind()
        with torch.autocast(scores.device.type, enabled=False):
            llh = self.crf(scores[rows].float(), labels[rows], mask[rows], reduction="token_mean")
        return -llh

    def decode(self, scores: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        rows = mask[:, 0]
        paths: list[list[int]] = [[] for _ in range(scores.size(0))]
        if rows.any():
            self._bind()
            with torch.autocast(scores.device.type, enabled=False):
                decoded = self.crf.decode(scores[rows].float(), mask[rows])
            for index, path in zip(torch.nonzero(rows).flatten().tolist(), decoded, strict=True):
                paths[index] = path
        return paths


@HEADS.register("crf")
class CRFHead(nn.Module):
    """Linear emissions + a linear-chain CRF over the labels (Viterbi decoding)."""

    requires = ("token",)

    def __init__(self, in_size: int, num_labels: int, dropout: float = 0.1, crf_lr_scale: float = 100.0, **_: object) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_size, num_labels)
        self.crf = CRFLayer(num_labels, crf_lr_scale)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(self.dropout(features))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.crf.loss(scores, labels, _require(mask))

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        return self.crf.decode(scores, _require(mask))


@HEADS.register("bilstm")
class BiLSTMHead(nn.Module):
    """A BiLSTM over the word encodings, then a linear softmax layer per word (cross-entropy).
    Option ``lstm_hidden``: units per direction (default: half the input size)."""

    requires = ("token",)

    def __init__(self, in_size: int, num_labels: int, dropout: float = 0.1, lstm_hidden: int | None = None, **_: object) -> None:
        super().__init__()
        self.lstm = BiLSTMEncoder(in_size, int(lstm_hidden or max(1, in_size // 2)))
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(self.lstm.out_size, num_labels)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(self.dropout(self.lstm(self.dropout(features), _require(mask))))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _require(mask)
        return F.cross_entropy(scores[mask].float(), labels[mask])

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        return _as_rows(scores.argmax(-1), _require(mask))


@HEADS.register("bilstm_crf")
class BiLSTMCRFHead(BiLSTMHead):
    """BiLSTM emissions + a CRF (the classic BiLSTM-CRF tagger on top of the encoder)."""

    def __init__(
        self, in_size: int, num_labels: int, dropout: float = 0.1, lstm_hidden: int | None = None,
        crf_lr_scale: float = 100.0, **_: object,
    ) -> None:
        super().__init__(in_size, num_labels, dropout, lstm_hidden)
        self.crf = CRFLayer(num_labels, crf_lr_scale)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.crf.loss(scores, labels, _require(mask))

    def predict(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> list:
        return self.crf.decode(scores, _require(mask))


def _require(mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        raise ValueError("word-level heads need the word mask of a word-level featurizer")
    return mask.bool()
