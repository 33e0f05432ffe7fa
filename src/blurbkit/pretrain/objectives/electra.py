"""``electra``: replaced-token detection (Clark et al., 2020), the fourth pretraining setting of the
stability paper's Table 2.

A small masked-LM **generator** fills the collator's masked positions with tokens sampled from its
softmax (no gradient flows through the sampling); the **discriminator** reads the result and
predicts, for every non-padding token, whether it was replaced. A position where the sample equals
the original token counts as *not* replaced. Loss = generator MLM + ``rtd_weight`` (50) x
discriminator binary cross-entropy.

The sampling is inverse-CDF with one uniform number per masked position, drawn by the collator from
(seed, epoch, example) like the masks: a sample depends on its example alone, not on how a global
batch is split over processes or micro-batches, so DDP equals one process with gradient accumulation
(tests/test_ddp.py) and a resumed run draws what an uninterrupted one does.

The generator has the discriminator's depth and ``generator_size`` (default 1/4) of its width
(hidden size, heads, feed-forward size). Both read **one** embeddings module (token, position and
type embeddings and their LayerNorm, the same tensors): the generator projects the shared
embeddings down to its width (``embeddings_project``, as ELECTRA does) and its output layer is tied
to the shared token embeddings. Only the discriminator is written to OUT, as a Hugging Face
``ElectraForPreTraining`` directory: ``AutoModel`` loads it as ``ElectraModel`` and blurbkit
fine-tunes it like any encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.data import Collator
from blurbkit.pretrain.objectives.base import Objective, from_pretrained

SAMPLING_STREAM = 11  # the collator's random stream for the generator's samples (masks use their own)


def electra_config(config: Any) -> Any:
    """The discriminator's ElectraConfig from a BertConfig (a preset or a BERT config JSON)."""
    from transformers import ElectraConfig

    if getattr(config, "model_type", "") == "electra":
        return config
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
            "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
            "initializer_range", "layer_norm_eps", "pad_token_id")
    values = {key: getattr(config, key) for key in keys if hasattr(config, key)}
    return ElectraConfig(embedding_size=config.hidden_size, **values)


def generator_config(disc: Any, size: float) -> Any:
    """The generator's config: the discriminator's depth and embedding size, `size` of its width."""
    from transformers import ElectraConfig

    check_generator_size(size)
    hidden = max(1, round(size * disc.hidden_size))
    heads = max(1, round(size * disc.num_attention_heads))
    while hidden % heads:  # heads must divide the width
        heads -= 1
    values = disc.to_dict()
    for key in ("architectures", "transformers_version", "model_type", "_name_or_path", "dtype", "torch_dtype"):
        values.pop(key, None)
    values.update(hidden_size=hidden, num_attention_heads=heads, embedding_size=disc.embedding_size,
                  intermediate_size=max(1, round(size * disc.intermediate_size)))
    return ElectraConfig(**values)


def check_generator_size(size: float) -> None:
    if not 0 < size <= 1:
        raise BlurbkitError(f"--generator-size {size}: the generator is a fraction of the discriminator's width, "
                            "0 < size <= 1 (a generator larger than the discriminator is not ELECTRA; 0.25 is the paper's)")


class ElectraPair(nn.Module):
    """Generator + discriminator with one shared embeddings module."""

    def __init__(self, discriminator: nn.Module, generator_size: float) -> None:
        super().__init__()
        from transformers import ElectraForMaskedLM

        self.discriminator = discriminator
        self.generator = ElectraForMaskedLM(generator_config(discriminator.config, generator_size))
        self.tie()

    def tie(self) -> None:
        """One embeddings module for both; the generator's output layer is the token embeddings."""
        shared = self.discriminator.electra.embeddings
        self.generator.electra.embeddings = shared
        self.generator.generator_lm_head.weight = shared.word_embeddings.weight

    @property
    def config(self) -> Any:
        return self.discriminator.config


class ElectraModule(nn.Module):
    """The training step: generator MLM on the masked batch, sampling, replaced-token detection."""

    def __init__(self, inner: ElectraPair, rtd_weight: float) -> None:
        super().__init__()
        self.inner = inner  # checkpoint names: inner.generator.*, inner.discriminator.*
        self.rtd_weight = rtd_weight

    def generate(self, input_ids, attention_mask, token_type_ids, masked_index) -> torch.Tensor:
        """Generator logits at the masked positions (flattened batch index)."""
        gen = self.inner.generator
        hidden = gen.electra(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1])[masked_index]
        return gen.generator_lm_head(gen.generator_predictions(hidden)).float()

    @staticmethod
    @torch.no_grad()
    def replace(input_ids, masked_index, mlm_labels, logits, uniform=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(discriminator input, replaced-token labels): the original tokens with samples from the
        generator at the masked positions; label 1 exactly where the sample differs from the original.
        `uniform` (one number in [0, 1) per masked position) samples by inverse CDF; without it, torch's RNG."""
        probs = torch.softmax(logits.detach().float(), dim=-1)
        if uniform is None:
            sampled = torch.multinomial(probs, 1).squeeze(-1)
        else:
            cdf = probs.cumsum(-1)
            sampled = torch.searchsorted(cdf, uniform.to(cdf.dtype).unsqueeze(-1), right=True).squeeze(-1)
            sampled = sampled.clamp_(max=probs.shape[-1] - 1)  # float rounding may leave cdf[-1] < u
        corrupted = input_ids.clone().reshape(-1)
        corrupted[masked_index] = sampled
        labels = torch.zeros_like(corrupted, dtype=torch.float32)
        labels[masked_index] = (sampled != mlm_labels).float()
        return corrupted.view_as(input_ids), labels.view_as(input_ids)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                masked_index: torch.Tensor, mlm_labels: torch.Tensor,
                nsp_labels: torch.Tensor | None = None,
                sample_uniform: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.generate(input_ids, attention_mask, token_type_ids, masked_index)
        gen_loss = nn.functional.cross_entropy(logits, mlm_labels)
        corrupted, labels = self.replace(input_ids, masked_index, mlm_labels, logits, sample_uniform)
        disc = self.inner.discriminator
        scores = disc(input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids).logits.float()
        real = attention_mask.bool()  # every non-padding token, special tokens included (as ELECTRA)
        rtd_loss = nn.functional.binary_cross_entropy_with_logits(scores[real], labels[real])
        with torch.no_grad():
            accuracy = ((scores[real] > 0).float() == labels[real]).float().mean()
            replaced = labels[real].mean()
        return gen_loss + self.rtd_weight * rtd_loss, {"gen_loss": gen_loss.detach(), "rtd_loss": rtd_loss.detach(),
                                                       "rtd_accuracy": accuracy, "replaced_fraction": replaced}


class ElectraCollator(Collator):
    """The MLM batches plus ``sample_uniform``: per masked position (in ``masked_index`` order) a
    uniform number from the example's own stream (seed, epoch, example index)."""

    def __call__(self, rows, indices, epoch, masking, rate):
        batch = super().__call__(rows, indices, epoch, masking, rate)
        length = batch["input_ids"].shape[1]
        counts = np.bincount(batch["masked_index"].numpy() // length, minlength=len(indices))
        epochs = np.broadcast_to(np.asarray(epoch, dtype=np.int64), (len(indices),))
        draws = [np.random.default_rng([self.seed, int(e), int(i), SAMPLING_STREAM]).random(int(n))
                 for e, i, n in zip(epochs, indices, counts, strict=True)]
        batch["sample_uniform"] = torch.from_numpy(np.concatenate(draws).astype(np.float32))
        return batch


class Electra(Objective):
    generator_size: float = 0.25
    rtd_weight: float = 50.0
    # The generator's input as in the ELECTRA code (pretrain_helpers.mask): 85 % [MASK], 15 % kept,
    # no random tokens; the discriminator learns to spot the generator's replacements instead.
    mask_fraction: float = 0.85
    random_fraction: float = 0.0
    loss_parts = ("gen_loss", "rtd_loss")
    reads = ("generator_size", "rtd_weight")

    def configure(self, cfg: Any) -> None:
        check_generator_size(cfg.generator_size)
        if cfg.rtd_weight <= 0:
            raise BlurbkitError(f"--rtd-weight {cfg.rtd_weight}: the discriminator's weight must be positive (ELECTRA: 50)")
        if cfg.adversarial:
            raise BlurbkitError("--adversarial is not implemented for --objective electra (use mlm or mlm_nsp)")
        self.generator_size, self.rtd_weight = cfg.generator_size, cfg.rtd_weight

    def collator(self, tokenizer: Any, cache: Any, max_length: int, seed: int) -> Collator:
        return ElectraCollator(tokenizer, cache, max_length, seed)

    def new_model(self, config: Any) -> nn.Module:
        from transformers import ElectraForPreTraining

        return ElectraPair(ElectraForPreTraining(electra_config(config)), self.generator_size)

    def load_model(self, model_dir: Path) -> nn.Module:
        """Continual ELECTRA from a discriminator directory (the generator starts fresh: it is never saved)."""
        from blurbkit.models.loading import read_config

        model_type = read_config(model_dir).get("model_type")
        if model_type != "electra":
            raise BlurbkitError(f"--objective electra continues an ELECTRA discriminator; this model is {model_type!r} "
                                "(start from scratch with --from-scratch)", path=model_dir)
        return ElectraPair(from_pretrained("ElectraForPreTraining", model_dir), self.generator_size)

    def module(self, model: nn.Module) -> nn.Module:
        return ElectraModule(model, self.rtd_weight)

    def sequence_flops(self, config: Any, length: int, masked: float) -> float:
        from blurbkit.models.flops import electra_training_flops

        disc = electra_config(config)
        return electra_training_flops(disc, generator_config(disc, self.generator_size), length, masked)

    def parameter_counts(self, config: Any) -> tuple[int, int]:
        """The discriminator's encoder, and the generator without the embeddings it shares."""
        from transformers import ElectraForMaskedLM, ElectraModel

        disc = electra_config(config)
        with torch.device("meta"):
            encoder = sum(p.numel() for p in ElectraModel(disc).parameters())
            generator = ElectraForMaskedLM(generator_config(disc, self.generator_size))
        shared = {id(p) for p in generator.electra.embeddings.parameters()} | {id(generator.generator_lm_head.weight)}
        return encoder, sum(p.numel() for p in generator.parameters() if id(p) not in shared)

    def hf_models(self, module: nn.Module) -> list[nn.Module]:
        return [module.inner.generator, module.inner.discriminator]

    def saved_model(self, module: nn.Module) -> nn.Module:
        return module.inner.discriminator

    def signature(self) -> dict[str, Any]:
        return {"objective": self.name, "generator_size": self.generator_size, "rtd_weight": self.rtd_weight,
                "corruption": [self.mask_fraction, self.random_fraction]}
