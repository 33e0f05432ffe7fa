"""The interface every pretraining objective implements (see the package docstring).

Nothing here imports torch or transformers at module level: the registry's names must be listable
by ``blurbkit --help`` without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError

if TYPE_CHECKING:
    from torch import nn

    from blurbkit.pretrain.data import Collator
    from blurbkit.pretrain.token_cache import TokenCache


class Objective:
    """Defaults fit any objective trained on the MLM collator's masked batches."""

    name: str = ""  # set by get_objective to the registered name
    # How the masked positions are corrupted: BERT's 80 % [MASK], 10 % a random token, 10 % kept.
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    # The loss terms its training module reports, each a train_log.jsonl column (the loss combines them
    # as the objective says: MLM + NSP, or ELECTRA's generator loss + 50 x replaced-token detection).
    loss_parts: tuple[str, ...] = ("mlm_loss",)
    # The PretrainConfig options only this objective reads (set away from their defaults with another
    # objective, they are refused rather than ignored).
    reads: tuple[str, ...] = ()

    def configure(self, cfg: Any) -> None:
        """Read this objective's options from the PretrainConfig; refuse bad ones with one
        BlurbkitError line. Called before any work (no output directory exists yet)."""

    def attach_adversary(self, module: nn.Module, adversary: Any) -> None:
        """Give the training module the --adversarial perturbation (runtime/adversarial.py)."""
        if not hasattr(module, "adversary"):
            raise BlurbkitError(f"--adversarial is not available for --objective {self.name}")
        module.adversary = adversary

    # -- data ---------------------------------------------------------------------------------
    def example_mode(self, packing: bool) -> str:
        """The example layout ``data.make_examples`` builds: packed windows or one document each."""
        return "packed" if packing else "document"

    def check_corpus(self, cache: TokenCache) -> None:
        """Refuse, with one BlurbkitError line, a corpus this objective cannot learn from."""

    def example_notes(self, examples: Any) -> list[str]:
        """Warnings about the examples built for this objective (printed once; training goes on)."""
        return []

    def collator(self, tokenizer: Any, cache: TokenCache, max_length: int, seed: int) -> Collator:
        """Rows -> tensors: masked ids, attention mask, segment ids, MLM targets (and NSP labels
        when the rows are segment pairs)."""
        from blurbkit.pretrain.data import Collator

        return Collator(tokenizer, cache, max_length, seed)

    # -- model --------------------------------------------------------------------------------
    def new_model(self, config: Any) -> nn.Module:
        """A freshly initialised model from a BertConfig (the caller seeds torch first)."""
        raise NotImplementedError

    def load_model(self, model_dir: Path) -> nn.Module:
        """The model of a Hugging Face directory, for continual pretraining."""
        raise NotImplementedError

    def module(self, model: nn.Module) -> nn.Module:
        """The training module: ``forward(**batch) -> (loss, {part name: detached loss})``."""
        raise NotImplementedError

    def hf_models(self, module: nn.Module) -> list[nn.Module]:
        """The Hugging Face models inside the training module."""
        return [module.inner]

    def sequence_flops(self, config: Any, length: int, masked: float) -> float:
        """Training FLOPs of one sequence of `length` real tokens with `masked` predicted positions
        for ``new_model(config)`` (the pretraining study's equal compute; parts in models/flops.py)."""
        from blurbkit.models.flops import masked_lm_training_flops

        return masked_lm_training_flops(config, length, masked)

    def parameter_counts(self, config: Any) -> tuple[int, int]:
        """(parameters of the encoder that is saved, trained parameters beyond it that are not, such
        as ELECTRA's generator) of ``new_model(config)``, counted on the meta device."""
        import torch
        from transformers import BertModel

        with torch.device("meta"):
            return sum(p.numel() for p in BertModel(config).parameters()), 0

    # -- output -------------------------------------------------------------------------------
    def saved_model(self, module: nn.Module) -> nn.Module:
        """The Hugging Face model written to the output directory."""
        return module.inner

    def signature(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by this objective."""
        return {"objective": self.name}


def from_pretrained(auto_class: str, model_dir: Path) -> nn.Module:
    """``transformers.<auto_class>.from_pretrained`` (safetensors only), errors as one line."""
    import transformers

    try:
        return getattr(transformers, auto_class).from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise BlurbkitError(f"cannot load the model ({str(err).splitlines()[0]})", path=model_dir) from None
