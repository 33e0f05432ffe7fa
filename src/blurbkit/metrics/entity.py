"""Entity-level F1 for NER, exactly as conlleval / seqeval (default mode) chunk tag sequences.

Chunking follows conlleval's startOfChunk / endOfChunk rules, so it accepts every sequence
conlleval accepts: an ``I-X`` after ``O`` or after another type starts a new chunk; ``B-X I-Y``
is two chunks. IOBES (``E-``/``S-``) and BIOUL (``L-``/``U-``, read as ``E-``/``S-``) use the same
rules. Sentences never share a chunk (conlleval treats the blank line as a boundary).

Strict: a predicted span counts when a gold span has the same type and both boundaries;
micro P/R/F1 over all spans of the split.

Lenient (reported beside strict, never instead): a predicted span is correct when it shares
at least one token with a gold span of the same type in the same sentence.
precision = predicted spans that overlap some same-type gold span / predicted spans;
recall = gold spans overlapped by some same-type predicted span / gold spans. Each side is
counted on its own spans, so one long prediction covering two gold spans gives P 1/1, R 2/2.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from blurbkit.metrics.base import METRICS, MetricResult, check_lengths, harmonic, prf, ratio
from blurbkit.tagging import tags_to_spans

Chunk = tuple[str, int, int]  # (type, start, end) with end exclusive


def chunks(tags: Sequence[str], scheme: str = "iob2") -> list[Chunk]:
    """The (type, start, end) spans of one sentence, by conlleval's rules (tagging.py; end exclusive)."""
    return [(kind, start, end) for start, end, kind in tags_to_spans(tags, scheme)]


def _overlaps(span: Chunk, others: Sequence[Chunk]) -> bool:
    return any(o[0] == span[0] and o[1] < span[2] and span[1] < o[2] for o in others)


@METRICS.register("entity_f1")
def entity_f1(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    scheme: str = "iob2",
    pred_scheme: str | None = None,
) -> MetricResult:
    """Strict (official) and lenient entity P/R/F1 over sentences of tags; see the module docstring."""
    check_lengths(gold, pred, "sentences")
    tp = n_gold = n_pred = lenient_pred = lenient_gold = 0
    by_type: dict[str, Counter[str]] = {}
    for number, (gold_tags, pred_tags) in enumerate(zip(gold, pred, strict=True)):
        check_lengths(gold_tags, pred_tags, f"tags in sentence {number}")
        gold_spans, pred_spans = chunks(gold_tags, scheme), chunks(pred_tags, pred_scheme or scheme)
        hits = set(gold_spans) & set(pred_spans)
        tp, n_gold, n_pred = tp + len(hits), n_gold + len(gold_spans), n_pred + len(pred_spans)
        lenient_pred += sum(_overlaps(span, gold_spans) for span in pred_spans)
        lenient_gold += sum(_overlaps(span, pred_spans) for span in gold_spans)
        for key, spans in (("tp", hits), ("gold", gold_spans), ("pred", pred_spans)):
            for span in spans:
                by_type.setdefault(span[0], Counter())[key] += 1
    strict = prf(tp, n_pred, n_gold)
    lenient_p, lenient_r = ratio(lenient_pred, n_pred), ratio(lenient_gold, n_gold)
    return {
        "score": strict["f1"],
        "precision": strict["precision"],
        "recall": strict["recall"],
        "tp": tp,
        "n_gold": n_gold,
        "n_pred": n_pred,
        "lenient": {
            "score": harmonic(lenient_p, lenient_r),
            "precision": lenient_p,
            "recall": lenient_r,
            "tp_pred": lenient_pred,
            "tp_gold": lenient_gold,
        },
        "per_type": {
            etype: {"f1": prf(c["tp"], c["pred"], c["gold"])["f1"], "n_gold": c["gold"], "n_pred": c["pred"]}
            for etype, c in sorted(by_type.items())
        },
    }
