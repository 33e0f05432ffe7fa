"""Dropout masks for CPU training from a fast generator.

Why: torch's CPU dropout draws one Mersenne-Twister number per element on one thread. Measured
here it took 12.7 ms for the attention-probability mask of one MiniLM batch (32 x 12 x 48 x 48)
and a third of a whole training step. numpy's SFC64 generator fills 64 random bits per draw at
about 1 ns; cut into four 16-bit lanes they give the same Bernoulli keep-masks (the drop
probability rounded to a multiple of 1/65536) in about a quarter of the time.

Installed only for the duration of `Engine.train` on a CPU: every `nn.Dropout` of the model is
swapped for `FastDropout`, and the training attention (runtime/attention.py) draws its masks from
the same source. Seeded from the run's seed, so runs stay reproducible. GPUs keep torch's own
dropout (its Philox generator is already fast there).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

LANES = 4  # 16-bit lanes per 64-bit draw


class MaskSource:
    """Bernoulli keep-masks from a seeded SFC64 stream."""

    def __init__(self, seed: int | list[int]) -> None:
        self.reseed(seed)

    def reseed(self, seed: int | list[int]) -> None:
        """Restart the stream; a list (e.g. [seed, rank, step]) gives independent streams that a
        resumed run can rebuild exactly."""
        self.bits = np.random.SFC64(seed)

    def keep(self, shape: torch.Size, p: float) -> torch.Tensor:
        """A bool tensor of `shape`, each element False with probability p (to 1/65536)."""
        n = math.prod(shape)
        raw = self.bits.random_raw((n + LANES - 1) // LANES)
        lanes = torch.from_numpy(raw.view(np.int16)[:n])  # uniform over [-32768, 32767]
        return (lanes >= round(p * 65536) - 32768).view(shape)

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if p <= 0.0:
            return x
        if p >= 1.0:
            return torch.zeros_like(x)
        keep = self.keep(x.shape, p)
        if x.dtype == torch.float32:
            # fp32: one multiplication by a pre-scaled mask, forward and backward (where + mul
            # each way otherwise): the same values, since 1/(1-p) is the same fp32 number either
            # way (in bf16 it would round, which is why other dtypes keep `where`). Half the time
            # of the dropout in an fp32 training step (tests/test_dropout.py checks equality).
            return x * keep.to(torch.float32).mul_(1.0 / (1.0 - p))
        return torch.where(keep, x * (1.0 / (1.0 - p)), 0.0)


class FastDropout(nn.Module):
    """`nn.Dropout` with masks from a `MaskSource` (identity in eval mode)."""

    def __init__(self, p: float, source: MaskSource) -> None:
        super().__init__()
        self.p, self.source = p, source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return self.source.dropout(x, self.p)


_active: MaskSource | None = None  # read by the training attention while `fast_dropout` is open


def active_source() -> MaskSource | None:
    return _active


@contextmanager
def fast_dropout(model: nn.Module, seed: int | list[int]) -> Iterator[MaskSource]:
    """Swap every `nn.Dropout` in `model` for `FastDropout` inside the block, then put them back."""
    global _active
    source = MaskSource(seed)
    swapped = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if type(child) is nn.Dropout]
    for parent, name, child in swapped:
        setattr(parent, name, FastDropout(child.p, source))
    previous, _active = _active, source
    try:
        yield source
    finally:
        _active = previous
        for parent, name, child in swapped:
            setattr(parent, name, child)
