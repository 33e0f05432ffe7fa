"""``mlm_pairs``: masked LM alone over the two-segment inputs of ``mlm_nsp`` (``[CLS] A [SEP] B [SEP]``,
segment ids 0/1, B the continuation of A or, half the time, another document's sentences), without the
next-sentence loss: the stability paper's "MLM only" column (Table 2).

It differs from ``mlm_nsp`` by the NSP loss alone (same examples, same masks, a ``BertForMaskedLM``),
and from ``mlm`` (packed single sequences, the "MLM, single seq" column) by the input layout alone:
here the second segment's type embedding and a [SEP] inside the sequence are seen in pretraining,
as the sentence-pair tasks (BIOSSES, the QA sets) later present them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blurbkit.pretrain.data import check_nsp_corpus, nsp_pair_notes
from blurbkit.pretrain.objectives.mlm import MaskedLM, MaskedLMModule
from blurbkit.pretrain.token_cache import TokenCache


class PairedMaskedLMModule(MaskedLMModule):
    """The MLM module on segment pairs: the collator's NSP labels are read and ignored."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                masked_index: torch.Tensor, mlm_labels: torch.Tensor,
                nsp_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return super().forward(input_ids, attention_mask, token_type_ids, masked_index, mlm_labels)


class PairedMaskedLM(MaskedLM):
    def example_mode(self, packing: bool) -> str:
        return "nsp"  # the segment pairs of mlm_nsp, whatever --no-packing says

    def check_corpus(self, cache: TokenCache) -> None:
        check_nsp_corpus(cache)  # the pairs need document boundaries as NSP's do

    def example_notes(self, examples: Any) -> list[str]:
        return nsp_pair_notes(examples)

    def module(self, model: nn.Module) -> nn.Module:
        return PairedMaskedLMModule(model)

    def signature(self) -> dict[str, Any]:
        return {"objective": self.name}  # the "nsp" example mode alone would match an mlm_nsp checkpoint
