"""Fine-tuning stabilisation and the layer studies (SPEC §4): small functions on a BERT-family encoder.

- re-initialise the top k layers before fine-tuning (base: 1-3, large: up to 6);
- freeze the embeddings and the lower half of the layers;
- layer-wise learning-rate decay: layer l counted from the top trains at lr * d**l
  (heads and the top layer at lr, the embeddings at lr * d**L);
- pruning study: drop the top k layers and fine-tune what is left.
"""

from __future__ import annotations

import torch
from torch import nn

from blurbkit.errors import BlurbkitError


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-family encoder (BERT, RoBERTa, ELECTRA share this layout)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise BlurbkitError(f"{type(encoder).__name__} has no encoder.layer list: layer options need a BERT-family encoder")
    return layers


def _check_count(encoder: nn.Module, k: int, what: str) -> nn.ModuleList:
    layers = encoder_layers(encoder)
    if not 0 <= k < len(layers):
        raise BlurbkitError(f"{what} {k} layers: the encoder has {len(layers)} (at least one must remain)")
    return layers


@torch.no_grad()
def _bert_init(module: nn.Module, std: float) -> None:
    # BERT's initialiser, written out: transformers' own `_init_weights` skips parameters it
    # has marked as loaded from a checkpoint, which is exactly what re-initialisation must reset.
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def reinit_top_layers(encoder: nn.Module, k: int) -> None:
    """Give the top k blocks fresh weights, drawn as BERT initialises them."""
    std = getattr(encoder.config, "initializer_range", 0.02)
    for layer in list(_check_count(encoder, k, "cannot re-initialise"))[len(encoder_layers(encoder)) - k :]:
        layer.apply(lambda module: _bert_init(module, std))


def drop_top_layers(encoder: nn.Module, k: int) -> None:
    """Remove the top k blocks (the pruning study); the saved config then says the new depth."""
    layers = _check_count(encoder, k, "cannot drop")
    if k:
        encoder.encoder.layer = nn.ModuleList(list(layers)[: len(layers) - k])
        encoder.config.num_hidden_layers = len(encoder.encoder.layer)


def freeze_lower_half(encoder: nn.Module) -> None:
    """Fix the embeddings (with ELECTRA's embeddings projection, when it has one) and the lower half of the blocks."""
    layers = encoder_layers(encoder)
    project = getattr(encoder, "embeddings_project", None)
    for module in [encoder.embeddings, *([project] if project is not None else []), *list(layers)[: len(layers) // 2]]:
        for param in module.parameters():
            param.requires_grad_(False)
