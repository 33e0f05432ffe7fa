"""Use a fine-tuned model on new text: ``Predictor.load(run_dir / "model").predict([...])``.

NER/PICO models take raw sentences (split into words the way the BLURB NER corpora are: runs
of letters/digits and single punctuation marks) and return entity spans with character offsets.
Sequence models take the fields of their task's canonical record (text; text_a/text_b;
question/context) or plain strings for single-text tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.models.model import BlurbModel
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.adapters import adapter_for
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.engine import Engine, encode

WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def split_words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def tags_to_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Word-index spans [start, end) of IOB2/IO chunks (an I- after O or another type starts a chunk)."""
    spans, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if start is not None and (prefix in ("O", "B") or label != kind):
            spans.append((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and start is None:
            start, kind = i, label
    return spans


class Predictor:
    def __init__(self, model: BlurbModel, tokenizer: Any, batch_tokens: int | None = None, progress: bool = False,
                 settings: dict[str, Any] | None = None) -> None:
        """settings: engine fields of FinetuneConfig for inference (e.g. {"precision": "fp32"},
        {"tune_allocator": False}; docs/performance.md)."""
        recipe = model.recipe
        try:
            self.spec = get_dataset(recipe.dataset)
        except BlurbkitError:
            self.spec = None
        if self.spec is None:
            raise BlurbkitError(f"the model was fine-tuned on {recipe.dataset!r}, which is not registered here")
        self.adapter = adapter_for(self.spec)
        self.adapter.labels = list(recipe.labels)
        if hasattr(self.adapter, "_index"):
            self.adapter._index = {tag: i for i, tag in enumerate(recipe.labels)}
        config = FinetuneConfig(dataset=recipe.dataset, eval_tokens=batch_tokens, progress=progress, **(settings or {}))
        self.engine = Engine(model, tokenizer, self.adapter, self.spec, config)
        self.recipe = recipe

    @classmethod
    def load(cls, model_dir: str | Path, **options: Any) -> Predictor:
        model, tokenizer = BlurbModel.load(model_dir)
        return cls(model, tokenizer, **options)

    def predict(self, inputs: Sequence[str | dict[str, Any]]) -> list[Any]:
        if self.spec.is_token_task:
            return self._predict_entities([i if isinstance(i, str) else i["text"] for i in inputs])
        records = []
        for n, item in enumerate(inputs):
            record = {"text": item} if isinstance(item, str) else dict(item)
            record.setdefault("id", str(n))
            records.append(record)
        data = encode(records, self.adapter, self.recipe, self.engine.tokenizer, labelled=False)
        by_id = self.engine.predict(data)
        return [by_id[r["id"]] for r in records]

    def _predict_entities(self, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
        words = [split_words(text) for text in texts]
        records = [{"id": str(n), "tokens": [w for w, _, _ in ws] or ["."]} for n, ws in enumerate(words)]
        data = encode(records, self.adapter, self.recipe, self.engine.tokenizer, labelled=False)
        tags = self.engine.predict(data)
        results = []
        for text, ws, sentence_tags in zip(texts, words, tags, strict=True):
            entities = []
            for start, end, kind in tags_to_spans(sentence_tags[: len(ws)]):
                begin, finish = ws[start][1], ws[end - 1][2]
                entities.append({"start": begin, "end": finish, "type": kind, "text": text[begin:finish]})
            results.append(entities)
        return results
