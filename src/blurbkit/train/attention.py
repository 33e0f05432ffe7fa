"""Attention for training on a CPU: SDPA's math, without SDPA's fp32 detour.

With attention dropout (training), torch's fused CPU SDPA kernel does not apply and SDPA falls
back to its math path, which upcasts bf16 query/key/value to fp32 and casts the output back:
about a dozen extra copies of [batch, heads, length, head_dim] per layer and step. The same math
done here in the autocast dtype (softmax accumulates in fp32 inside the kernel, as flash
attention does) cut the CPU time of a MiniLM training step by about a quarter. Everywhere else
(inference, no dropout, GPUs, causal use) this is plain SDPA. Installed only for the duration of
`Engine.train` and only on encoders that were using SDPA, so saved configs never name it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.nn import functional as F

from blurbkit.train.dropout import active_source

NAME = "blurbkit_sdpa"


def attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
              **kwargs: Any) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or query.device.type != "cpu" or getattr(module, "is_causal", False):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask.to(scores.dtype)
    probs = torch.softmax(scores, dim=-1)
    source = active_source()  # train/dropout.py: the fast mask generator, when the engine set one
    probs = source.dropout(probs, dropout) if source else F.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous(), None


@contextmanager
def training_attention(encoder: Any) -> Iterator[bool]:
    """Use `attention` inside the block if the encoder runs SDPA; yields whether it does."""
    config = getattr(encoder, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(encoder, "set_attn_implementation"):
        yield False
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    try:
        encoder.set_attn_implementation(NAME)
    except (ValueError, KeyError, TypeError):
        yield False
        return
    try:
        yield True
    finally:
        encoder.set_attn_implementation("sdpa")
