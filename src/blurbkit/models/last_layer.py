"""Inference that computes the encoder's last layer only for the rows the featurizer reads.

Why: a [CLS] relation or classification model reads one row of the last hidden state, a word
tagger reads each word's first subword. In the last layer every other row's query projection,
attention, output projection and feed-forward network is work nobody looks at: for MiniLM-L6 on
ChemProt (70 subwords a sentence) that is 14 % of all linear-layer FLOPs. The keys and values
still come from every row, so the rows computed are exactly what the full layer gives them.

`RowsOnlyLayer` stands in for a BERT-style layer (BERT, RoBERTa, ELECTRA, PubMedBERT and the
other classes in BERT_STYLE_LAYERS) while `rows` is set,
and returns a full-length tensor whose other rows are zero. Featurizers say what they read with
an optional `rows(batch)` method; those without one (mention pooling, the SLL summaries) get the
full layer. Inference only: training needs every row's gradient path anyway, and the engine
turns it off when the model is compiled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class RowsOnlyLayer(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.rows: torch.Tensor | None = None  # [batch, P] token positions; None = every row

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any,
                **kwargs: Any) -> torch.Tensor:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        layer, rows = self.layer, self.rows
        attention = layer.attention.self
        implementation = attention.config._attn_implementation
        # eager has no registered function; flash attention unpads rows its own way: full layer.
        if rows is None or implementation not in ALL_ATTENTION_FUNCTIONS or implementation.startswith("flash"):
            return layer(hidden_states, attention_mask, *args, **kwargs)
        size, length, width = hidden_states.shape
        picked_index = rows.unsqueeze(-1).expand(-1, -1, width)
        picked = hidden_states.gather(1, picked_index)  # [batch, P, hidden]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(size, x.size(1), -1, attention.attention_head_size).transpose(1, 2)

        query = heads(attention.query(picked))
        key, value = heads(attention.key(hidden_states)), heads(attention.value(hidden_states))
        if attention_mask is not None:  # [batch, 1, length, length]: keep the picked query rows
            attention_mask = attention_mask.expand(size, -1, length, length)
            attention_mask = attention_mask.gather(2, rows[:, None, :, None].expand(-1, attention_mask.size(1), -1, length))
        attend = ALL_ATTENTION_FUNCTIONS[implementation]
        context, _ = attend(attention, query, key, value, attention_mask, dropout=0.0, scaling=attention.scaling)
        attended = layer.attention.output(context.reshape(size, rows.size(1), -1), picked)
        out = layer.output(layer.intermediate(attended), attended)
        return hidden_states.new_zeros(size, length, width).scatter_(1, picked_index, out.to(hidden_states.dtype))


# Layers whose forward is exactly BERT's post-LayerNorm block (checked against the full layer in
# tests/test_cpu_speed.py). Look-alikes with the same module names differ inside (XLM-RoBERTa-XL
# is pre-LayerNorm, ESM rotates q/k, MobileBERT and X-MOD change `output`), so names are not enough.
BERT_STYLE_LAYERS = frozenset({
    "BertLayer", "RobertaLayer", "XLMRobertaLayer", "CamembertLayer", "ElectraLayer", "ErnieLayer",
    "Data2VecTextLayer", "LayoutLMLayer", "RoCBertLayer", "BertGenerationLayer",
})


def _layers(encoder: nn.Module) -> nn.ModuleList | None:
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList) or not len(stack):
        return None
    last = stack[-1]
    if type(last).__name__ not in BERT_STYLE_LAYERS or getattr(last, "is_decoder", False):
        return None
    return stack


@contextmanager
def rows_only_last_layer(encoder: nn.Module) -> Iterator[RowsOnlyLayer | None]:
    """Swap the last layer for a `RowsOnlyLayer` inside the block (None: not a BERT-style encoder)."""
    stack = _layers(encoder)
    if stack is None:
        yield None
        return
    original = stack[-1]
    stack[-1] = RowsOnlyLayer(original)
    try:
        yield stack[-1]
    finally:
        stack[-1] = original
