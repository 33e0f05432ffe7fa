"""What the SLL attention head looks at: per-word attention near the pair's entities.

Subword weights are summed into words (WordPiece ``##`` pieces join the word before them), words
are lower-cased and Porter-stemmed (as in the BERT-RE study), and each stem's weight is averaged
over its occurrences within ``window`` words of either entity (entity words themselves left out).
Inputs without entity spans (documents, questions) use every word.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write


@dataclass
class Word:
    text: str
    weight: float
    entity: bool
    tokens: list[int] = field(default_factory=list)


@dataclass
class Analysed:
    record: dict
    words: list[Word]
    gold: str
    predicted: str


def words_of(tokens: Sequence[str], weights: Sequence[float], spans: Sequence[Sequence[int]], specials: set[str]) -> list[Word]:
    """Merge subwords into words; mark the words inside an entity span."""
    inside = {t for start, end in spans for t in range(start, end)}
    words: list[Word] = []
    for index, (token, weight) in enumerate(zip(tokens, weights, strict=True)):
        if token in specials:
            continue
        if token.startswith("##") and words and words[-1].tokens and words[-1].tokens[-1] == index - 1:
            words[-1].text += token[2:]
            words[-1].weight += weight
            words[-1].tokens.append(index)
            words[-1].entity = words[-1].entity or index in inside
        else:
            words.append(Word(token, weight, index in inside, [index]))
    return words


def near_entity_words(words: Sequence[Word], window: int) -> list[Word]:
    entity_positions = [i for i, w in enumerate(words) if w.entity]
    if not entity_positions:
        return [w for w in words if not w.entity]
    return [
        w for i, w in enumerate(words)
        if not w.entity and min(abs(i - e) for e in entity_positions) <= window
    ]


def top_stems(analysed: Sequence[Analysed], window: int, min_count: int, top: int) -> list[tuple[str, float, int, str]]:
    """(stem, mean weight, occurrences, most frequent surface form), largest mean weight first."""
    from nltk.stem import PorterStemmer

    stemmer = PorterStemmer()
    weights: dict[str, list[float]] = defaultdict(list)
    forms: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in analysed:
        for word in near_entity_words(item.words, window):
            if not any(ch.isalpha() for ch in word.text):
                continue
            stem = stemmer.stem(word.text.lower())
            weights[stem].append(word.weight)
            forms[stem][word.text.lower()] += 1
    rows = [
        (stem, sum(values) / len(values), len(values), max(forms[stem], key=forms[stem].get))
        for stem, values in weights.items()
        if len(values) >= min_count
    ]
    return sorted(rows, key=lambda row: (-row[1], row[0]))[:top]


def run_attention(model: Any, tokenizer: Any, records: Sequence[dict], adapter: Any, batch_size: int = 32) -> list[Analysed]:
    """Predict `records` with an SLL-attention model and keep each example's word weights."""
    from blurbkit.models.transforms import TRANSFORMS, TransformContext
    from blurbkit.runtime.batching import collate

    if not hasattr(model.featurizer, "last_attention"):
        raise BlurbkitError(
            f"attention analysis needs a model fine-tuned with an SLL attention featurizer "
            f"(sll_attention or sll_attention_nocls); this one uses {model.recipe.featurizer!r}"
        )
    recipe = model.recipe
    examples = TRANSFORMS.get(recipe.transform)(records, TransformContext(tokenizer, recipe.max_length))
    specials = {t for t in (tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token) if t}  # markers stay words
    model.eval()
    analysed: list[Analysed] = []
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = collate(chunk, tokenizer.pad_token_id)
            scores, mask = model(batch)
            predictions = model.head.predict(scores, mask)
            attention = model.featurizer.last_attention
            for row, (example, predicted) in enumerate(zip(chunk, predictions, strict=True)):
                n = len(example["input_ids"])
                tokens = tokenizer.convert_ids_to_tokens(example["input_ids"])
                words = words_of(tokens, attention[row, :n].tolist(), example.get("entity_spans", []), specials)
                record = records[example["record_index"]]
                gold = record.get("label", record.get("labels", record.get("score", "")))
                analysed.append(Analysed(record, words, str(gold), str(adapter.decode(predicted))))
    return analysed


def write_html(path: Path, analysed: Sequence[Analysed], title: str) -> None:
    """A page of examples, each word's background as strong as its attention weight."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "p{line-height:1.9}.e{border:1px solid #333;font-weight:bold}span{padding:1px 2px}</style>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Background: the word's SLL attention weight (strongest word of each example = full colour). "
        "Boxed: the pair's entities.</p>",
    ]
    for item in analysed:
        peak = max((w.weight for w in item.words), default=0.0) or 1.0
        spans = "".join(
            f"<span{' class=e' if w.entity else ''} title='{w.weight:.4f}' "
            f"style='background:rgba(220,50,47,{w.weight / peak:.3f})'>{html.escape(w.text)}</span> "
            for w in item.words
        )
        parts.append(
            f"<h3>{html.escape(str(item.record.get('id', '')))}: gold {html.escape(item.gold)}, "
            f"predicted {html.escape(item.predicted)}</h3><p>{spans}</p>"
        )
    with atomic_write(path) as handle:
        handle.write("\n".join(parts) + "\n")
