"""One way to assemble a model from its recipe, used by fine-tuning, the speed comparison and
inference alike: recipe -> tokenizer + encoder (+ the transform's special tokens) -> featurizer ->
head. The recipe is saved beside the weights, so a model directory describes itself."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.models.featurizers import FEATURIZERS
from blurbkit.models.heads import HEADS
from blurbkit.models.loading import check_vocab_matches, load_encoder, load_tokenizer, read_config
from blurbkit.models.model import BlurbModel, ModelRecipe
from blurbkit.models.transforms import TRANSFORMS


def make_recipe(spec: Any, codec: Any, max_length: int, transform: str | None = None, featurizer: str | None = None,
                head: str | None = None, options: dict[str, Any] | None = None,
                train_records: Sequence[dict] = ()) -> ModelRecipe:
    """The recipe for `spec`'s task with its task type's default parts unless named otherwise."""
    task = spec.task
    recipe = ModelRecipe(
        dataset=spec.name,
        task_type=spec.task_type,
        labels=list(codec.labels),
        transform=transform or task.transform,
        featurizer=featurizer or task.featurizer,
        head=head or task.head,
        max_length=max_length,
        options=dict(options or {}),
        scheme=codec.scheme,
        pairs=task.pair_facts(spec, train_records),
    )
    check_parts_apply(recipe, task)
    return recipe


def check_parts_apply(recipe: ModelRecipe, task: Any) -> None:
    """Refuse a part that does not fit the task (a CRF on classification, ...) before any training."""
    for kind, registry, name in (
        ("transform", TRANSFORMS, recipe.transform),
        ("featurizer", FEATURIZERS, recipe.featurizer),
        ("head", HEADS, recipe.head),
    ):
        missing = [need for need in getattr(registry.get(name), "requires", ()) if need not in task.provides]
        if missing:
            raise BlurbkitError(
                f"{kind} {name!r} does not apply to {task.name} tasks (it needs: {', '.join(missing)})"
            )
    check_part_options(recipe.featurizer, recipe.head, recipe.options)
    # What the featurizer gives and the head reads: one vector (the default) or a pair of them.
    gives = getattr(FEATURIZERS.get(recipe.featurizer), "features", "vector")
    reads = getattr(HEADS.get(recipe.head), "features", "vector")
    if gives != reads:
        raise BlurbkitError(f"head {recipe.head!r} reads {reads} features; featurizer {recipe.featurizer!r} gives {gives} "
                            f"features ({'--featurizer siamese_mean' if reads == 'pair' else '--head cosine'} fits it)")


# What BlurbModel passes every featurizer / head itself: not options a user can set.
_BUILT_IN = {"self", "hidden_size", "in_size", "num_labels", "dropout"}


def part_option_names(part: Any) -> set[str]:
    """The keyword options a featurizer or head class reads (its named constructor parameters)."""
    return {name for name, parameter in inspect.signature(part.__init__).parameters.items()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)} - _BUILT_IN


def check_part_options(featurizer: str, head: str, options: dict[str, Any]) -> None:
    """Every part option is read by the featurizer or the head: both take **options and would
    otherwise ignore a mistyped or misplaced one (lstm_hiden=256, lstm_hidden with a softmax head)."""
    read = part_option_names(FEATURIZERS.get(featurizer)) | part_option_names(HEADS.get(head))
    unread = sorted(set(options) - read)
    if unread:
        raise BlurbkitError(f"part option(s) {', '.join(unread)} read by neither featurizer {featurizer!r} nor head "
                            f"{head!r} (they read: {', '.join(sorted(read)) or 'no options'})")


def build_model(recipe: ModelRecipe, model_dir: Path, dropout: float = 0.1,
                prepare_encoder: Callable[[Any], None] | None = None) -> tuple[BlurbModel, Any]:
    """A fresh model (pretrained encoder, new featurizer and head) and its tokenizer.
    prepare_encoder: changes to the bare encoder (dropping, re-initialising or freezing layers),
    made before new embeddings and the head draw their random initial values."""
    tokenizer = load_tokenizer(model_dir)
    check_vocab_matches(tokenizer, read_config(model_dir), model_dir)
    encoder = load_encoder(model_dir, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if prepare_encoder is not None:
        prepare_encoder(encoder)
    extra_tokens = getattr(TRANSFORMS.get(recipe.transform), "special_tokens", ())
    if extra_tokens:  # e.g. entity start/end markers: new vocabulary entries with trained embeddings
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
        encoder.resize_token_embeddings(len(tokenizer))
    model = BlurbModel(encoder, recipe, dropout=dropout)
    if hasattr(model.featurizer, "from_checkpoint"):  # a featurizer that starts from pretrained weights (cls_pooler)
        model.featurizer.from_checkpoint(model_dir)
    return model, tokenizer
