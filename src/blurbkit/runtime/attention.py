"""Attention on a CPU: SDPA's math, with the precision where it pays.

Training (attention dropout): torch's fused CPU SDPA kernel does not apply and SDPA falls back to
its math path, which upcasts bf16 query/key/value to fp32 and casts the output back: about a dozen
extra copies of [batch, heads, length, head_dim] per layer and step. The same math done here in
the autocast dtype cut the CPU time of a MiniLM training step by about a quarter.

Inference (no dropout, bf16/fp16 inputs): torch's fused CPU flash-attention kernel runs at about
35 GFLOP/s on MiniLM's 12 heads of 32 dimensions (a fifth of a Predictor's time for a
thirtieth of its FLOPs), and a softmax over bf16 rows is 3-4x slower than over fp32 rows. Two
bf16 matmuls around an fp32 softmax, with the padding mask added as [batch, 1, 1, keys], were
2.9x faster than SDPA at 16 subwords, 2.2x at 70, 1.7x at 128 and 1.2x at 256 (2,048-token
batches, allocator settings of runtime/allocator.py; masked_fill with a full [batch, 1, L, L] mask
lost a third of that).

Everywhere else (fp32 inference, GPUs, causal use) this is plain SDPA. Installed only for the
duration of `Engine.train` / `Engine.predict` and only on encoders that were using SDPA, so
saved configs never name it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.nn import functional as F

from blurbkit.runtime.dropout import active_source

NAME = "blurbkit_sdpa"


def attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
              **kwargs: Any) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    inference = dropout == 0.0 and not torch.is_grad_enabled()
    if (query.device.type != "cpu" or getattr(module, "is_causal", False)
            or (inference and query.dtype == torch.float32)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2))
    if inference:  # no autograd: scale and mask in place, softmax in fp32
        scores = scores.float().mul_(scale)
        if attention_mask is not None:
            scores.add_(additive(attention_mask, scores.dtype))
        probs = torch.softmax(scores, dim=-1)
    else:
        scores = scores * scale
        if attention_mask is not None:
            scores = scores + additive(attention_mask, scores.dtype)
        probs = torch.softmax(scores, dim=-1)
        source = active_source()  # runtime/dropout.py: the fast mask generator, when the engine set one
        probs = source.dropout(probs, dropout) if source else F.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous(), None


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A mask as something to add to the scores: 0 where attended, the dtype's minimum elsewhere
    (exp() of it is 0, as with masked_fill, and an add is several times cheaper on a CPU)."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def key_padding_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
                     mask_function: Callable | None = None, attention_mask: torch.Tensor | None = None,
                     local_size: int | None = None, **kwargs: Any) -> torch.Tensor | None:
    """The encoder's padding mask as [batch, 1, 1, keys]: the same information as sdpa_mask's
    [batch, 1, queries, keys] for a padded bidirectional encoder, without materialising (and
    then applying) the same row once per query. Anything else (causal, windows, offsets, no
    padding) is sdpa_mask's."""
    from transformers.masking_utils import bidirectional_mask_function, causal_mask_function, sdpa_mask

    mask_function = mask_function or causal_mask_function  # sdpa_mask's own default
    padding_only = (mask_function is bidirectional_mask_function and kv_offset == 0 and local_size is None
                    and attention_mask is not None and attention_mask.dim() == 2 and attention_mask.size(1) == kv_length
                    and not torch.compiler.is_compiling())  # keep.all() below would break a compiled graph
    if padding_only:
        keep = attention_mask.bool()
        if not bool(keep.all()):
            return keep[:, None, None, :]
    return sdpa_mask(batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset, mask_function=mask_function,
                     attention_mask=attention_mask, local_size=local_size, **kwargs)


@contextmanager
def cpu_attention(encoder: Any) -> Iterator[bool]:
    """Use `attention` inside the block if the encoder runs SDPA; yields whether it does."""
    config = getattr(encoder, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(encoder, "set_attn_implementation"):
        yield False
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, key_padding_mask)
    try:
        encoder.set_attn_implementation(NAME)
    except (ValueError, KeyError, TypeError):
        yield False
        return
    try:
        yield True
    finally:
        encoder.set_attn_implementation("sdpa")


