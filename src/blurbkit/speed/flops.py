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
