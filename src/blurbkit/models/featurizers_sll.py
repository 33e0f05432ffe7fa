"""SLL fine-tuning: summarise the last layer's token outputs, optionally beside [CLS].

The summary runs over the tokens of the input text only: [CLS] (position 0), every [SEP] and
padding are left out. [SEP] is found as the id of each row's last attended token, which every
BLURB input ends with, so no tokenizer ids are needed here (RoBERTa's </s> works the same way).

- sll_attention: additive attention, score_i = h_i . k (k learned), softmax, weighted sum.
  The weights of the last forward pass are kept in ``last_attention`` ([batch, tokens], zero
  on excluded positions) for `blurbkit analyze attention`.
- sll_lstm: an LSTM over the tokens, its last state.
- sll_bilstm: a BiLSTM, the forward direction's last state and the backward direction's
  first-token state concatenated (both ends).
Each is concatenated with the [CLS] encoding; the ``*_nocls`` variants use the summary alone.
Option ``lstm_hidden``: LSTM units (default: the encoder's hidden size; per direction, half).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from blurbkit.models.featurizers import FEATURIZERS


def text_token_mask(batch: dict) -> torch.Tensor:
    """True for the input text's tokens: not [CLS], not [SEP], not padding. [B, T] bool."""
    attention = batch["attention_mask"].bool()
    ids = batch["input_ids"]
    last = attention.sum(1).clamp(min=1) - 1
    sep = ids.gather(1, last.unsqueeze(1))  # every input ends with [SEP]
    mask = attention & (ids != sep)
    mask[:, 0] = False
    return mask


class _Summary(nn.Module):
    requires = ("sequence",)
    with_cls = True

    def __init__(self, hidden_size: int, summary_size: int) -> None:
        super().__init__()
        self.out_size = summary_size + (hidden_size if self.with_cls else 0)

    def summarise(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden: torch.Tensor, batch: dict) -> tuple[torch.Tensor, None]:
        summary = self.summarise(hidden, text_token_mask(batch))
        if self.with_cls:
            return torch.cat([hidden[:, 0].to(summary.dtype), summary], dim=-1), None
        return summary, None


class AttentionSummary(_Summary):
    """[CLS] + additive attention over the text tokens."""

    def __init__(self, hidden_size: int, **_: object) -> None:
        super().__init__(hidden_size, hidden_size)
        self.key = nn.Parameter(torch.empty(hidden_size).normal_(std=0.02))
        self.last_attention: torch.Tensor | None = None

    def summarise(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (hidden.float() @ self.key.float()).masked_fill(~mask, float("-inf"))
        # A row with no text token (empty input) would be all -inf: give it zero weights.
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        self.last_attention = weights.detach()
        return torch.einsum("bt,bth->bh", weights, hidden.float())


class LSTMSummary(_Summary):
    """[CLS] + an LSTM's last state over the text tokens."""

    bidirectional = False

    def __init__(self, hidden_size: int, lstm_hidden: int | None = None, **_: object) -> None:
        units = int(lstm_hidden or hidden_size)
        per_direction = max(1, units // 2) if self.bidirectional else units
        super().__init__(hidden_size, per_direction * (2 if self.bidirectional else 1))
        self.lstm = nn.LSTM(hidden_size, per_direction, batch_first=True, bidirectional=self.bidirectional)

    def summarise(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Move each row's text tokens to the front (stable, order kept), then pack.
        order = torch.sort((~mask).int(), dim=1, stable=True).indices
        tokens = hidden.float().gather(1, order.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(tokens, lengths, batch_first=True, enforce_sorted=False)
        with torch.autocast(hidden.device.type, enabled=False):
            _, (last, _) = self.lstm(packed)
        # last: [directions, B, units]; forward = state after the last token, backward = after
        # reading back to the first token: the two ends of the text.
        return torch.cat(list(last), dim=-1)


class BiLSTMSummary(LSTMSummary):
    """[CLS] + a BiLSTM's two ends over the text tokens."""

    bidirectional = True


FEATURIZERS.register("sll_attention")(AttentionSummary)
FEATURIZERS.register("sll_lstm")(LSTMSummary)
FEATURIZERS.register("sll_bilstm")(BiLSTMSummary)


@FEATURIZERS.register("sll_attention_nocls")
class AttentionOnly(AttentionSummary):
    """Additive attention summary alone (no [CLS])."""

    with_cls = False


@FEATURIZERS.register("sll_lstm_nocls")
class LSTMOnly(LSTMSummary):
    """LSTM last state alone (no [CLS])."""

    with_cls = False


@FEATURIZERS.register("sll_bilstm_nocls")
class BiLSTMOnly(BiLSTMSummary):
    """BiLSTM ends alone (no [CLS])."""

    with_cls = False
