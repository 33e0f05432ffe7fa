"""The optimiser and learning-rate schedule every training loop uses (fine-tuning and pretraining):
AdamW with the BERT weight-decay convention, optional layer-wise learning-rate decay, and the
"slanted triangular" schedule (linear warm-up, then linear decay to zero)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def depth_from_top(name: str, num_layers: int) -> int:
    """0 for the top block and anything above the encoder (featurizer, head), L for the embeddings
    (ELECTRA's projection of smaller embeddings to the hidden size, ``embeddings_project.``, included)."""
    if ".embeddings." in f".{name}" or ".embeddings_project." in f".{name}":
        return num_layers
    marker = "encoder.layer."
    if marker in name:
        index = int(name.split(marker, 1)[1].split(".", 1)[0])
        return num_layers - 1 - index
    return 0


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and LayerNorm weights are not decayed (the BERT convention)."""
    return param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name


def parameter_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    lr: float,
    weight_decay: float,
    layer_decay: float | None = None,
    num_layers: int = 0,
) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: no weight decay on biases and LayerNorm weights, and
    with `layer_decay` d, a learning rate of lr * d**depth for each of the `num_layers` blocks
    counted from the top (SPEC §4)."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        decay = 0.0 if no_weight_decay(name, param) else weight_decay
        scale = layer_decay ** depth_from_top(name, num_layers) if layer_decay else 1.0
        groups.setdefault((lr * scale, decay), []).append(param)
    return [{"params": params, "lr": group_lr, "weight_decay": decay} for (group_lr, decay), params in groups.items()]


class UncorrectedAdamW(torch.optim.AdamW):
    """AdamW without bias correction, as BERT's original optimizer (AdamWeightDecay) updates:

        m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g^2,  p <- p - lr (m_t / (sqrt(v_t) + eps) + wd p)

    torch's AdamW divides by the corrections c1 = 1 - b1^t and c2 = 1 - b2^t:
    p <- p (1 - lr wd) - (lr / c1) m_t / (sqrt(v_t) / sqrt(c2) + eps). Stepping it with
    lr' = lr c1 / sqrt(c2), eps' = eps / sqrt(c2) and wd' = wd sqrt(c2) / c1 gives exactly the
    uncorrected update, so the fused and foreach kernels run unchanged. The group values are
    swapped in for the step only: the schedule, `state_dict` and checkpoints see the real ones,
    and t is read from the optimizer state, so a resumed run continues the same sequence."""

    @torch.no_grad()
    def step(self, closure: Any = None, **kwargs: Any) -> Any:
        saved = []
        for group in self.param_groups:
            saved.append((group["lr"], group["eps"], group["weight_decay"]))
            t = self._next_step(group)
            beta1, beta2 = group["betas"]
            c1, root_c2 = 1 - beta1**t, math.sqrt(1 - beta2**t)
            group["lr"] = group["lr"] * c1 / root_c2
            group["eps"] = group["eps"] / root_c2
            group["weight_decay"] = group["weight_decay"] * root_c2 / c1
        try:
            return super().step(closure, **kwargs)
        finally:
            for group, (lr, eps, decay) in zip(self.param_groups, saved, strict=True):
                group["lr"], group["eps"], group["weight_decay"] = lr, eps, decay

    def _next_step(self, group: dict[str, Any]) -> int:
        """The step number the coming update has (1 for the first) in this group."""
        for param in group["params"]:
            step = self.state.get(param, {}).get("step")
            if step is not None:
                return int(step) + 1
        return 1


def adamw(groups: list[dict[str, Any]], lr: float, fused: bool = True, bias_correction: bool = True,
          **options: Any) -> torch.optim.Optimizer:
    """AdamW over `groups`. fused: one kernel per parameter instead of ~8 passes over memory (CPU and CUDA).
    bias_correction=False: Adam without it (`UncorrectedAdamW`, with the same fused or foreach kernels)."""
    cls = torch.optim.AdamW if bias_correction else UncorrectedAdamW
    return cls(groups, lr=lr, fused=fused, foreach=None if fused else True, **options)


def warmup_linear_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then linear decay to zero at `total_steps`. Update t
    (from 0) runs at lr*(t+1)/W while warming up, so no update is wasted at lr 0 (Hugging Face's
    `get_linear_schedule_with_warmup` starts at 0: the same ramp one step later)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def slanted_triangular(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up over the first `warmup_ratio` of the steps (at least one), then linear decay to zero."""
    return warmup_linear_decay(optimizer, total_steps, max(1, int(total_steps * warmup_ratio)))
