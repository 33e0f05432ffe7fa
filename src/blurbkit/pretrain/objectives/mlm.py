"""``mlm``: masked language modelling (BERT / PubMedBERT), over packed windows or one document per
sequence; on two-segment rows the same module serves ``mlm_nsp`` (which adds its NSP head)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from blurbkit.pretrain.objectives.base import Objective, from_pretrained


class MaskedLMModule(nn.Module):
    """Wraps the Hugging Face model so the MLM head runs only on the masked positions (about 7x
    less head compute than the full sequence). Other ``*ForMaskedLM`` models get full-sequence labels."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner  # the attribute name is part of the checkpoint format (inner.*)
        self.is_bert = getattr(inner.config, "model_type", "") == "bert" and hasattr(inner, "bert") and hasattr(inner, "cls")
        self.adversary: Any = None  # runtime.adversarial.Adversary with --adversarial (set by the objective)
        self.last_parts: dict[str, torch.Tensor] = {}  # the last batch's loss parts, for the log

    def mlm(self, input_ids, attention_mask, token_type_ids, masked_index, mlm_labels) -> tuple[torch.Tensor, Any]:
        """(MLM loss, the model output: encoder output for BERT, the model's own otherwise); with an
        adversary, the loss includes its weighted symmetric KL at the masked positions."""
        if self.is_bert:
            def predict() -> tuple[torch.Tensor, Any]:
                out = self.inner.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])[masked_index]
                return self.inner.cls.predictions(hidden), out  # BertOnlyMLMHead and BertPreTrainingHeads alike

            logits, out = predict()
            loss = nn.functional.cross_entropy(logits.float(), mlm_labels)
        else:
            labels = torch.full_like(input_ids, -100).reshape(-1)
            labels[masked_index] = mlm_labels

            def predict() -> tuple[torch.Tensor, Any]:
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels.view_as(input_ids))
                return out.logits.reshape(-1, out.logits.shape[-1])[masked_index], out

            logits, out = predict()
            loss = out.loss
        self.last_parts = {"mlm_loss": loss.detach()}
        if self.adversary is not None and self.training:
            from blurbkit.runtime.adversarial import embedding_shape

            shape = embedding_shape(input_ids, self.adversary.embeddings)
            term, self.last_parts["adv_kl"] = self.adversary.loss(lambda: predict()[0], logits, shape)
            loss = loss + term
        return loss, out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                masked_index: torch.Tensor, mlm_labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, _ = self.mlm(input_ids, attention_mask, token_type_ids, masked_index, mlm_labels)
        return loss, dict(self.last_parts)


class MaskedLM(Objective):
    def new_model(self, config: Any) -> nn.Module:
        from transformers import BertForMaskedLM

        return BertForMaskedLM(config)

    def load_model(self, model_dir: Path) -> nn.Module:
        return from_pretrained("AutoModelForMaskedLM", model_dir)

    def module(self, model: nn.Module) -> nn.Module:
        return MaskedLMModule(model)

    def signature(self) -> dict[str, Any]:
        return {}  # the example mode (packed/document) already identifies the run, as before objectives existed
