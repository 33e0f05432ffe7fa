"""Adversarial training in the embedding space (ALUM, Liu et al. 2020; SMART's symmetric KL), shared
by pretraining (``blurbkit pretrain --adversarial``) and fine-tuning (``finetune --adversarial``).

For a batch: start from a small random perturbation ``delta`` of the token embeddings, take
``steps`` ascent steps along the gradient of the divergence between clean and perturbed predictions
(each step normalised per token, then projected back into the epsilon-ball of every token t), and
add ``alpha * symmetric KL(clean, perturbed)`` to the loss. The model sees the perturbation through
a forward hook on its token-embedding layer, so any Hugging Face encoder works unchanged. Defaults
are ALUM's (Algorithm 1): the L-infinity ball (``|delta_t,i| <= eps`` for every coordinate; steps
normalised by the gradient's largest coordinate), eps 1e-5, one step of size 1e-3, init std 1e-5.
``norm="l2"`` bounds each token's L2 norm instead (what blurbkit did before; a ball sqrt(dim) times
smaller at the same eps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from blurbkit.errors import BlurbkitError

NORMS = ("inf", "l2")


@dataclass(frozen=True)
class AdversarialConfig:
    epsilon: float = 1e-5  # radius of the per-token ball
    steps: int = 1  # ascent steps
    step_size: float = 1e-3
    alpha: float = 1.0  # weight of the symmetric KL in the loss (ALUM: 10 pretraining, 1 fine-tuning)
    init_std: float = 1e-5
    norm: str = "inf"  # the ball: "inf" (ALUM: every coordinate within eps) or "l2" (each token's norm)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise BlurbkitError(f"--adv-norm {self.norm!r}: one of {', '.join(NORMS)}")
        if not self.epsilon > 0:
            raise BlurbkitError(f"--adv-epsilon {self.epsilon}: the perturbation radius must be positive")
        if self.steps < 1:
            raise BlurbkitError(f"--adv-steps {self.steps}: at least one ascent step")
        if not self.step_size > 0:
            raise BlurbkitError(f"--adv-step-size {self.step_size}: the ascent step must be positive")
        if self.alpha < 0:
            raise BlurbkitError(f"--adv-alpha {self.alpha}: the KL weight must not be negative")


def symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, mask: torch.Tensor | None = None,
                 outputs: str = "categorical") -> torch.Tensor:
    """KL(p||q) + KL(q||p), averaged over the positions where `mask` is true. `outputs` says what
    the last dimension holds: "categorical" logits of one distribution (softmax), or "independent"
    logits of one Bernoulli each (a sigmoid per label, HoC), where the divergence is summed over
    labels (a softmax would call shifting every logit alike no change at all). A single output
    (regression) has no distribution: the squared difference."""
    p_logits, q_logits = p_logits.float(), q_logits.float()
    if p_logits.shape[-1] == 1:
        per = (p_logits - q_logits).squeeze(-1) ** 2
    elif outputs == "independent":
        # for Bernoulli p = sigmoid(a), q = sigmoid(b): KL(p||q) + KL(q||p) = (p - q)(a - b)
        per = ((p_logits.sigmoid() - q_logits.sigmoid()) * (p_logits - q_logits)).sum(-1)
    else:
        p_log, q_log = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
        per = ((p_log.exp() - q_log.exp()) * (p_log - q_log)).sum(-1)  # = KL(p||q) + KL(q||p)
    if mask is not None:
        per = per[mask.bool()]
    return per.mean() if per.numel() else per.sum()


def project(delta: torch.Tensor, epsilon: float, norm: str = "inf") -> torch.Tensor:
    """Each token's perturbation back into its ball of radius epsilon: every coordinate clipped
    (L-infinity) or the vector scaled down (L2)."""
    if norm == "inf":
        return delta.clamp(-epsilon, epsilon)
    return delta * torch.clamp(epsilon / (delta.norm(dim=-1, keepdim=True) + 1e-12), max=1.0)


def ascent_direction(grad: torch.Tensor, norm: str = "inf") -> torch.Tensor:
    """The gradient normalised per token by its dual size: largest coordinate (L-infinity) or L2 norm."""
    size = grad.abs().amax(dim=-1, keepdim=True) if norm == "inf" else grad.norm(dim=-1, keepdim=True)
    return grad / (size + 1e-12)


class Adversary:
    """Perturbs the output of `embeddings` (the token-embedding layer) while ``perturbed`` is active."""

    def __init__(self, embeddings: nn.Module, config: AdversarialConfig, outputs: str = "categorical") -> None:
        self.embeddings, self.config = embeddings, config
        self.outputs = outputs  # what the predictions' last dimension is (symmetric_kl); the head says
        self.delta: torch.Tensor | None = None
        self.generator: torch.Generator | None = None  # the initial noise's source; None: torch's global one

    def reseed(self, key: list[int]) -> None:
        """Draw the next initial noise from a stream of `key` alone (pretraining: seed, slice, step),
        so a micro-batch's noise does not depend on which process or accumulation step computes it."""
        import numpy as np

        self.generator = torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))

    @contextmanager
    def perturbed(self, delta: torch.Tensor) -> Iterator[None]:
        def add(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
            return output + delta.to(output.dtype)

        handle = self.embeddings.register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()

    def perturbation(self, predict: Callable[[], torch.Tensor], clean: torch.Tensor, shape: torch.Size,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
        """The ascent: a perturbation of `shape` inside the epsilon-ball that raises the divergence."""
        cfg = self.config
        if self.generator is not None:
            noise = torch.randn(shape, generator=self.generator).to(clean.device)
        else:
            noise = torch.randn(shape, device=clean.device)
        delta = project(noise * cfg.init_std, cfg.epsilon, cfg.norm)
        clean = clean.detach()
        for _ in range(cfg.steps):
            delta.requires_grad_(True)
            with self.perturbed(delta):
                divergence = symmetric_kl(predict(), clean, mask, self.outputs)
            (grad,) = torch.autograd.grad(divergence, delta, allow_unused=True)
            if grad is None:
                grad = torch.zeros_like(delta)
            step = ascent_direction(grad, cfg.norm)
            delta = project(delta.detach() + cfg.step_size * step, cfg.epsilon, cfg.norm)
        return delta.detach()

    def divergence(self, predict: Callable[[], torch.Tensor], clean: torch.Tensor, delta: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric KL between the clean predictions and those under `delta`, each side's gradient
        taken with the other side fixed (ALUM's form)."""
        with self.perturbed(delta):
            adv = predict()
        return 0.5 * (symmetric_kl(adv, clean.detach(), mask, self.outputs)
                      + symmetric_kl(adv.detach(), clean, mask, self.outputs))

    def loss(self, predict: Callable[[], torch.Tensor], clean: torch.Tensor, shape: torch.Size,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha * divergence, the divergence detached) for the batch `predict` re-runs; `shape` is
        the token-embedding output's ([batch, length, dim]).

        Under a low-precision autocast the term's passes run in fp32, the clean reference included:
        bf16 keeps 8 bits of mantissa, and a perturbation of eps 1e-5 vanishes at the first matmul
        while bf16 rounding moves the logits far more (MiniLM, [CLS] logits, eps 1e-5: largest change
        3e-5 and symmetric KL 1e-10 in fp32; 2e-3 and 7e-7 under bf16 autocast, whatever eps), so
        the term would train on rounding noise, not on the perturbation."""
        device = clean.device.type
        if torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self._loss(predict, predict(), shape, mask)
        return self._loss(predict, clean, shape, mask)

    def _loss(self, predict: Callable[[], torch.Tensor], clean: torch.Tensor, shape: torch.Size,
              mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        self.delta = self.perturbation(predict, clean, shape, mask)
        kl = self.divergence(predict, clean, self.delta, mask)
        return self.config.alpha * kl, kl.detach()


def embedding_shape(input_ids: torch.Tensor, embeddings: nn.Module) -> torch.Size:
    return torch.Size([*input_ids.shape, embeddings.embedding_dim])
