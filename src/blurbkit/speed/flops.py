"""Model FLOPs of a BERT-family encoder, for model FLOPs utilisation (MFU).

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


def pretrain_sequence_flops(objective: str, config: Any, length: int, masked: float,
                            generator: Any | None = None) -> float:
    """Training FLOPs (3 x forward) of one pretraining sequence of `length` real tokens with `masked`
    predicted positions, as blurbkit computes it: the MLM head only at the masked positions.

    * ``mlm`` / ``mlm_pairs``: encoder + MLM head;
    * ``mlm_nsp``: + the pooler and the 2-way NSP layer on [CLS];
    * ``electra``: the **generator** (its encoder of `generator`'s width, the projection of the
      shared embeddings down to it, its MLM head at the masked positions) + the discriminator
      (encoder + the per-token 2-layer replaced-token head). The sampling has no gradient but is
      negligible; the generator's backward is counted like any other (3 x forward)."""
    hidden = config.hidden_size
    embedding = getattr(config, "embedding_size", None) or hidden
    vocab = config.vocab_size
    if objective == "electra":
        if generator is None:
            raise ValueError("electra needs the generator's config")
        width = generator.hidden_size
        forward = forward_flops(config, length, num_labels=0) + length * (2 * hidden * hidden + 2 * hidden)
        forward += forward_flops(generator, length, num_labels=0) + length * 2 * embedding * width
        forward += masked * mlm_head_flops(width, embedding, vocab)
        return 3.0 * forward
    forward = forward_flops(config, length, num_labels=0) + masked * mlm_head_flops(hidden, embedding, vocab)
    if objective == "mlm_nsp":
        forward += 2 * hidden * hidden + 2 * hidden * 2
    return 3.0 * forward
