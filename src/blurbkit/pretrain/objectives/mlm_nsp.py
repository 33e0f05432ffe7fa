"""``mlm_nsp``: masked LM + next-sentence prediction, the original BERT recipe: ``[CLS] A [SEP] B [SEP]``
where B follows A in the document or (half the time) comes from another document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from blurbkit.pretrain.data import check_nsp_corpus, nsp_pair_notes
from blurbkit.pretrain.objectives.base import Objective, from_pretrained
from blurbkit.pretrain.objectives.mlm import MaskedLMModule
from blurbkit.pretrain.token_cache import TokenCache


class MaskedLMWithNSPModule(MaskedLMModule):
    """The MLM module plus the NSP head on the pooled [CLS] output; loss = MLM + NSP."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                masked_index: torch.Tensor, mlm_labels: torch.Tensor,
                nsp_labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mlm, out = self.mlm(input_ids, attention_mask, token_type_ids, masked_index, mlm_labels)
        if self.is_bert:
            logits = self.inner.cls.seq_relationship(out.pooler_output)
        else:
            logits = getattr(out, "seq_relationship_logits", None)
        if logits is None:  # a model without an NSP head: MLM only
            return mlm, dict(self.last_parts)
        nsp = nn.functional.cross_entropy(logits.float(), nsp_labels)
        return mlm + nsp, {**self.last_parts, "nsp_loss": nsp.detach()}


class MaskedLMWithNSP(Objective):
    loss_parts = ("mlm_loss", "nsp_loss")

    def example_mode(self, packing: bool) -> str:
        return "nsp"  # segment pairs with NSP labels, whatever --no-packing says

    def check_corpus(self, cache: TokenCache) -> None:
        check_nsp_corpus(cache)

    def example_notes(self, examples: Any) -> list[str]:
        return nsp_pair_notes(examples)

    def new_model(self, config: Any) -> nn.Module:
        from transformers import BertForPreTraining

        return BertForPreTraining(config)

    def load_model(self, model_dir: Path) -> nn.Module:
        return from_pretrained("AutoModelForPreTraining", model_dir)

    def module(self, model: nn.Module) -> nn.Module:
        return MaskedLMWithNSPModule(model)

    def sequence_flops(self, config: Any, length: int, masked: float) -> float:
        from blurbkit.models.flops import masked_lm_training_flops, nsp_head_flops

        return masked_lm_training_flops(config, length, masked) + 3.0 * nsp_head_flops(config.hidden_size)

    def signature(self) -> dict[str, Any]:
        return {}  # the example mode "nsp" already identifies the run, as with the old nsp=True
