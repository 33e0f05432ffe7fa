"""TransformInput over a split: records -> encoder-ready examples (tokenised once, optionally
cached on disk), with gold labels attached by the task's label codec."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blurbkit.models import encode_cache
from blurbkit.models.model import ModelRecipe
from blurbkit.models.transforms import TRANSFORMS, TransformContext
from blurbkit.runtime.batching import PaddedSplit


@dataclass
class Encoded:
    """A split after TransformInput: the records and their encoder-ready examples."""

    records: Sequence[dict]
    examples: list[dict]
    padded: PaddedSplit | None = None  # the examples as tensors, built on first use

    def padded_with(self, pad_id: int) -> PaddedSplit:
        """The examples as tensors, padded once and kept with the split."""
        if self.padded is None or len(self.padded) != len(self.examples):
            self.padded = PaddedSplit(self.examples, pad_id)
        return self.padded


def encode(
    records: Sequence[dict], codec: Any, recipe: ModelRecipe, tokenizer: Any, labelled: bool = True, cache: bool = False
) -> Encoded:
    """TransformInput over a split. cache: reuse (and keep) the tokenised examples on disk."""
    transform = TRANSFORMS.get(recipe.transform)
    key = encode_cache.cache_key(records, transform, recipe.max_length, tokenizer) if cache else None
    examples = encode_cache.load(key) if key else None
    if examples is None:
        examples = transform(records, TransformContext(tokenizer=tokenizer, max_length=recipe.max_length))
        if key:
            encode_cache.store(key, examples)
    if labelled:
        codec.attach_labels(records, examples)
    return Encoded(records, examples)
