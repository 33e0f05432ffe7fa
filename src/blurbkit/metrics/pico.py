"""EBM PICO: word-level F1 for each of P, I and O, then their plain mean (BLURB's macro F1).

A word is positive for an element when its tag's type is that element, whatever the prefix
(``I-PAR`` and ``B-PAR`` are both PAR words). The tags collapse P/I/O overlaps to one tag per
word, so this is sklearn's ``precision_recall_fscore_support(labels=[PAR, INT, OUT])`` over
the words' element labels, and the score is its ``average="macro"`` F1.

Reported beside it, never instead: ``span_macro_f1``, the mean over P/I/O of the exact-span
(seqeval) F1 of each element. LinkBERT's BLURB fine-tuning code reports this span-level number
for EBM PICO (``return_macro_metrics``), so published PICO scores may be either kind.
"""

from __future__ import annotations

from collections.abc import Sequence

from blurbkit.metrics.base import METRICS, MetricResult, check_lengths, prf
from blurbkit.metrics.entity import entity_f1

ELEMENTS = ("PAR", "INT", "OUT")


def word_element(tag: str) -> str:
    """The element a word's tag marks ("" for O)."""
    return tag.partition("-")[2] if tag != "O" else ""


@METRICS.register("pico_macro_f1")
def pico_macro_f1(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *, elements: Sequence[str] = ELEMENTS
) -> MetricResult:
    check_lengths(gold, pred, "sentences")
    counts = {element: [0, 0, 0] for element in elements}  # tp, n_pred, n_gold
    words = 0
    for number, (gold_tags, pred_tags) in enumerate(zip(gold, pred, strict=True)):
        check_lengths(gold_tags, pred_tags, f"tags in sentence {number}")
        words += len(gold_tags)
        for gold_tag, pred_tag in zip(gold_tags, pred_tags, strict=True):
            g, p = word_element(gold_tag), word_element(pred_tag)
            if p in counts:
                counts[p][1] += 1
                counts[p][0] += g == p
            if g in counts:
                counts[g][2] += 1
    per_element = {
        element: {**prf(*c), "tp": c[0], "n_pred": c[1], "n_gold": c[2]} for element, c in counts.items()
    }
    mean = {
        key: sum(s[key] for s in per_element.values()) / len(elements)
        for key in ("f1", "precision", "recall")
    }
    spans = entity_f1(gold, pred, scheme="any")["per_type"]
    return {
        "score": mean["f1"],
        "precision": mean["precision"],
        "recall": mean["recall"],
        "per_element": per_element,
        "span_macro_f1": sum(spans.get(e, {}).get("f1", 0.0) for e in elements) / len(elements),
        "n_words": words,
    }
