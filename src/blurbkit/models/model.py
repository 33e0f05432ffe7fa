"""The assembled model: encoder -> Featurizer -> Predict head, saved as a Hugging Face directory.

The encoder is saved with ``save_pretrained`` (so ``AutoModel.from_pretrained(dir)`` loads it);
the featurizer and head go beside it in ``blurbkit_head.safetensors`` with their build recipe in
``blurbkit.json``, so ``BlurbModel.load(dir)`` rebuilds the whole thing without pickles.
"""

from __future__ import annotations

import copy
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from blurbkit.errors import BlurbkitError
from blurbkit.models.featurizers import FEATURIZERS
from blurbkit.models.heads import HEADS
from blurbkit.models.loading import (
    HEAD_FILE,
    check_max_length,
    error_line,
    load_encoder,
    load_tokenizer,
    read_config,
    resolve_model_dir,
)

RECIPE_FILE = "blurbkit.json"


@dataclass
class ModelRecipe:
    """Everything needed to rebuild the parts on top of the encoder."""

    dataset: str
    task_type: str
    labels: list[str]
    transform: str
    featurizer: str
    head: str
    max_length: int
    options: dict[str, Any] = field(default_factory=dict)
    # The tagging scheme a token-level model predicts (bio, bioul, io). None in directories saved by
    # blurbkit 0.1.0, whose label list tells it (tagging.scheme_of_labels).
    scheme: str | None = None
    # Entity-pair tasks: the entity types, type pairs, pair order, no-relation label and placeholder
    # form the model was trained with (TaskType.pair_facts), so that blurbkit.Pipeline can build its
    # inputs from raw text. None for other tasks and in directories saved before it was recorded.
    pairs: dict[str, Any] | None = None


class BlurbModel(nn.Module):
    def __init__(self, encoder: nn.Module, recipe: ModelRecipe, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.recipe = recipe
        hidden = encoder.config.hidden_size
        self.featurizer = FEATURIZERS.get(recipe.featurizer)(hidden, **recipe.options)
        self.head = HEADS.get(recipe.head)(self.featurizer.out_size, max(1, len(recipe.labels)), dropout, **recipe.options)

    def with_encoder(self, encoder: nn.Module) -> BlurbModel:
        """A twin running `encoder` (e.g. a bf16 copy for inference) with this model's featurizer and head."""
        twin = copy.copy(self)
        twin._modules = {**self._modules, "encoder": encoder}
        return twin

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"]
        if hasattr(self.featurizer, "encoder_inputs"):  # e.g. a siamese featurizer: one row per sentence
            inputs = self.featurizer.encoder_inputs(inputs)
        # fp32 for the featurizer and head, whatever the encoder ran in (a no-op under autocast,
        # whose last LayerNorm already returns fp32; a cast for a bf16 inference twin).
        hidden = self.encoder(**inputs).last_hidden_state.float()
        features, mask = self.featurizer(hidden, batch)
        return self.head(features, mask), mask

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        scores, mask = self(batch)
        return self.head.loss(scores, batch["labels"], mask)

    def save(self, out_dir: Path, tokenizer: Any) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(out_dir, safe_serialization=True)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # The last call's truncation and padding (a fast tokenizer keeps them, and tokenizer.json
            # records them) depend on whether the splits were tokenised now or read from the encode
            # cache; every call sets its own, so the saved file holds none.
            backend.no_truncation()
            backend.no_padding()
        tokenizer.save_pretrained(out_dir)
        top = {f"featurizer.{k}": v for k, v in self.featurizer.state_dict().items()}
        top.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        save_file({k: v.detach().contiguous().cpu() for k, v in top.items()}, str(out_dir / HEAD_FILE))
        (out_dir / RECIPE_FILE).write_text(json.dumps(asdict(self.recipe), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, model_dir: str | Path) -> tuple[BlurbModel, Any]:
        """Rebuild a fine-tuned model saved by `save` (safetensors only)."""
        model_dir = Path(model_dir)
        recipe_path = model_dir / RECIPE_FILE
        if not model_dir.is_dir():
            raise BlurbkitError("model directory not found" if not model_dir.exists() else "not a directory", path=model_dir)
        if not recipe_path.is_file() or not (model_dir / HEAD_FILE).is_file():
            raise BlurbkitError(f"not a fine-tuned blurbkit model (needs {RECIPE_FILE} and {HEAD_FILE})", path=model_dir)
        recipe = read_recipe(recipe_path)
        resolve_model_dir(model_dir)  # config, encoder weights as safetensors (never a pickle), tokenizer
        check_max_length(read_config(model_dir), recipe.max_length, recipe_path, "the recipe's max_length")
        encoder = load_encoder(model_dir)
        try:
            model = cls(encoder, recipe)
        except BlurbkitError as err:  # a part the recipe names is not registered here
            raise BlurbkitError(str(err), path=recipe_path) from None
        try:
            state = load_file(str(model_dir / HEAD_FILE))
            model.featurizer.load_state_dict({k[11:]: v for k, v in state.items() if k.startswith("featurizer.")})
            model.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        except (SafetensorError, RuntimeError) as err:  # truncated file, or weights of another recipe
            raise BlurbkitError(f"{HEAD_FILE} is corrupt or does not fit {RECIPE_FILE} ({error_line(err)})", path=model_dir) from None
        return model, load_tokenizer(model_dir)


def read_recipe(path: Path) -> ModelRecipe:
    """blurbkit.json as a ModelRecipe, every field checked (one line naming the file and field otherwise)."""
    try:
        table = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BlurbkitError(f"not a blurbkit model recipe ({err})", path=path) from None
    if not isinstance(table, dict):
        raise BlurbkitError("not a blurbkit model recipe (expected a JSON object)", path=path)
    names = {f.name: f for f in fields(ModelRecipe)}
    required = [name for name, f in names.items() if f.default is MISSING and f.default_factory is MISSING]
    missing, unknown = [n for n in required if n not in table], [n for n in table if n not in names]
    if missing or unknown:
        what = f"lacks {', '.join(map(repr, missing))}" if missing else f"has unknown field(s) {', '.join(map(repr, unknown))}"
        raise BlurbkitError(f"not a blurbkit model recipe (it {what})", path=path)
    for name, value in table.items():
        problem = RECIPE_CHECKS[name](value)
        if problem:
            raise BlurbkitError(f"not a blurbkit model recipe ('{name}' {problem}, found {value!r:.60})", path=path)
    return ModelRecipe(**table)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _length(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be a whole number of at least 1"


def _labels(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(label, str) for label in value)
    return None if ok else "must be a list of strings"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be an object"


RECIPE_CHECKS = {"dataset": _text, "task_type": _text, "labels": _labels, "transform": _text, "featurizer": _text,
                 "head": _text, "max_length": _length, "options": _object, "scheme": _optional(_text),
                 "pairs": _optional(_object)}
