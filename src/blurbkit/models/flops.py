"""Model FLOPs of a BERT-family encoder: for model FLOPs utilisation (MFU), and the parts each
pretraining objective's ``sequence_flops`` adds up for the pretraining study's equal compute.

Counted per real (unpadded) token, as in the PaLM paper's MFU: forward = 2 x the matmul
weights per layer + 4 x length x hidden for attention scores and their use, plus the head;
training = 3 x forward (backward costs twice the forward). Padding and recomputation are not
useful work, so they do not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def forward_flops(config: Any, length: int, num_labels: int = 2) -> int:
    """FLOPs of one forward pass over one sequence of `length` subwords."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    inner = config.intermediate_size
    weights = 4 * hidden * hidden + 2 * hidden * inner  # Q, K, V, output; the two FFN matrices
    per_token = 2 * layers * weights + 2 * hidden * num_labels
    attention = 4 * layers * length * hidden  # QK^T and attention x V, per token
    return length * (per_token + attention)


def split_flops(config: Any, lengths: Iterable[int], num_labels: int = 2, training: bool = False) -> int:
    total = sum(forward_flops(config, n, num_labels) for n in lengths)
    return 3 * total if training else total


# ---------------------------------------------------------------- pretraining


def mlm_head_flops(hidden: int, embedding: int, vocab: int) -> int:
    """Forward FLOPs of a BERT/ELECTRA MLM head at one predicted position: the transform
    (hidden -> embedding) and the projection onto the vocabulary."""
    return 2 * hidden * embedding + 2 * embedding * vocab


def masked_lm_training_flops(config: Any, length: int, masked: float) -> float:
    """Training FLOPs (3 x forward) of one masked-LM sequence of `length` real tokens with `masked`
    predicted positions, as blurbkit computes it: the encoder, and the MLM head only at the masked
    positions."""
    hidden = config.hidden_size
    embedding = getattr(config, "embedding_size", None) or hidden
    head = masked * mlm_head_flops(hidden, embedding, config.vocab_size)
    return 3.0 * (forward_flops(config, length, num_labels=0) + head)


def nsp_head_flops(hidden: int) -> int:
    """Forward FLOPs of BERT's pooler and 2-way next-sentence layer on [CLS] (once per sequence)."""
    return 2 * hidden * hidden + 2 * hidden * 2


def electra_training_flops(discriminator: Any, generator: Any, length: int, masked: float) -> float:
    """Training FLOPs (3 x forward) of one ELECTRA sequence: the **generator** (its encoder at its own
    width, the projection of the shared embeddings down to it, its MLM head at the masked positions)
    and the discriminator (encoder + the per-token 2-layer replaced-token head). The sampling has no
    gradient but is negligible; the generator's backward counts like any other (3 x forward)."""
    hidden, width = discriminator.hidden_size, generator.hidden_size
    embedding = getattr(discriminator, "embedding_size", None) or hidden
    forward = forward_flops(discriminator, length, num_labels=0) + length * (2 * hidden * hidden + 2 * hidden)
    forward += forward_flops(generator, length, num_labels=0) + length * 2 * embedding * width
    forward += masked * mlm_head_flops(width, embedding, discriminator.vocab_size)
    return 3.0 * forward
