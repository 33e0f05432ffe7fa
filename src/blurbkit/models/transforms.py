"""TransformInput: turn canonical records into encoder inputs, one registered transform a task shape.

Each transform returns one or more *examples* per record: plain dicts of Python lists
(``input_ids``, ``token_type_ids`` and task fields) that the collator pads into tensors.
Token tasks may return several examples (windows) for one long record; ``record_index`` and
``word_index`` let predictions be merged back so that every gold word gets one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.registry import Registry

Example = dict[str, Any]
# The token span of an entity no kept token covers (cut off by max_length): the [CLS] row stands in.
MISSING_SPAN = [0, 1]


class RecordError(BlurbkitError):
    """One record cannot be encoded; `index` is its position among the records given (Predictor
    names the input, a training run the record id)."""

    def __init__(self, index: int, record_id: Any, problem: str) -> None:
        super().__init__(f"record {record_id}: {problem}")
        self.index, self.problem = index, problem


def lost_entities(example: Example) -> list[int]:
    """Which entities (1-based) of an example lie wholly outside its input (past max_length)."""
    return [k for k, span in enumerate(example.get("entity_spans") or (), start=1) if list(span) == MISSING_SPAN]


@dataclass(frozen=True)
class TransformContext:
    tokenizer: Any
    max_length: int


Transform = Callable[[Sequence[dict], TransformContext], list[Example]]
TRANSFORMS: Registry[Transform] = Registry("input transform")


def _special_ids(tokenizer) -> tuple[int, int]:
    return tokenizer.cls_token_id, tokenizer.sep_token_id


@TRANSFORMS.register("tokens")
def tokens_as_is(records: Sequence[dict], ctx: TransformContext) -> list[Example]:
    """Words as given; each word's first subword carries its label. Long inputs become
    overlapping windows (half-window stride) so no word is lost to truncation."""
    tokenizer = ctx.tokenizer
    unk = tokenizer.unk_token
    cls_id, sep_id = _special_ids(tokenizer)
    words_batch = [list(record["tokens"]) for record in records]
    encoded = tokenizer(words_batch, is_split_into_words=True, add_special_tokens=False)
    examples: list[Example] = []
    for index, words in enumerate(words_batch):
        ids = encoded["input_ids"][index]
        word_ids = encoded.word_ids(index)
        if len(set(w for w in word_ids if w is not None)) < len(words):
            # Some words tokenise to nothing (e.g. a lone control character): stand in [UNK]
            # so that the word still gets a position and a prediction.
            seen = set(word_ids)
            fixed = [w if i in seen else unk for i, w in enumerate(words)]
            again = tokenizer([fixed], is_split_into_words=True, add_special_tokens=False)
            ids, word_ids = again["input_ids"][0], again.word_ids(0)
        starts = [pos for pos, w in enumerate(word_ids) if w is not None and (pos == 0 or word_ids[pos - 1] != w)]
        width = ctx.max_length - 2
        stride = max(1, width // 2)
        begin = 0
        while True:
            end = min(begin + width, len(ids))
            positions = [p for p in starts if begin <= p < end]
            examples.append(
                {
                    "input_ids": [cls_id, *ids[begin:end], sep_id],
                    "word_positions": [p - begin + 1 for p in positions],
                    "word_index": [word_ids[p] for p in positions],
                    "record_index": index,
                    "window": (begin, end, len(ids)),
                }
            )
            if end >= len(ids):
                break
            begin += stride
    return examples


def _char_spans_to_tokens(offsets: list[tuple[int, int]], sequence_ids: list[int | None], spans: list[dict]) -> list[list[int]]:
    """Token [start, end) of each character span, within the first text segment."""
    result = []
    for span in spans:
        covered = [
            i
            for i, (start, end) in enumerate(offsets)
            if sequence_ids[i] == 0 and end > start and start < span["end"] and end > span["start"]
        ]
        result.append([covered[0], covered[-1] + 1] if covered else list(MISSING_SPAN))
    return result


def _single_text(records: Sequence[dict], ctx: TransformContext, field: str) -> list[Example]:
    encoded = ctx.tokenizer(
        [record[field] for record in records],
        truncation=True,
        max_length=ctx.max_length,
        return_offsets_mapping=True,
    )
    examples = []
    for index, record in enumerate(records):
        example = {
            "input_ids": encoded["input_ids"][index],
            "record_index": index,
        }
        if "token_type_ids" in encoded:
            example["token_type_ids"] = encoded["token_type_ids"][index]
        if record.get("entities"):
            example["entity_spans"] = _char_spans_to_tokens(
                encoded["offset_mapping"][index], encoded.sequence_ids(index), record["entities"]
            )
        examples.append(example)
    return examples


@TRANSFORMS.register("text")
def text_as_is(records: Sequence[dict], ctx: TransformContext) -> list[Example]:
    """[CLS] text [SEP]: documents (HoC) and relation inputs whose entities are already
    replaced by type tokens such as @CHEMICAL$ (entity dummification, the BLURB default)."""
    return _single_text(records, ctx, "text")


def _pair(records: Sequence[dict], ctx: TransformContext, first: str, second: str, truncation: str) -> list[Example]:
    encoded = ctx.tokenizer(
        [record[first] for record in records],
        [record[second] for record in records],
        truncation=truncation,
        max_length=ctx.max_length,
    )
    examples = []
    for index in range(len(records)):
        example = {"input_ids": encoded["input_ids"][index], "record_index": index}
        if "token_type_ids" in encoded:
            example["token_type_ids"] = encoded["token_type_ids"][index]
        examples.append(example)
    return examples


@TRANSFORMS.register("sentence_pair")
def sentence_pair(records: Sequence[dict], ctx: TransformContext) -> list[Example]:
    """[CLS] s1 [SEP] s2 [SEP] for sentence similarity."""
    return _pair(records, ctx, "text_a", "text_b", "longest_first")


tokens_as_is.requires = ("token",)
text_as_is.requires = ("text",)
sentence_pair.requires = ("text_pair",)


@TRANSFORMS.register("question_context")
def question_context(records: Sequence[dict], ctx: TransformContext) -> list[Example]:
    """[CLS] question [SEP] context [SEP]; only the context is cut when too long."""
    _check_questions_fit(records, ctx)
    return _pair(records, ctx, "question", "context", "only_second")


def _check_questions_fit(records: Sequence[dict], ctx: TransformContext) -> None:
    """A question that leaves no room for a context token is refused, naming its record. Cutting
    the question instead would change what is asked (and training never does: only the context
    is cut), and the tokenizer's own error for it is a bare exception without the record."""
    room = ctx.max_length - ctx.tokenizer.num_special_tokens_to_add(pair=True)
    questions = ctx.tokenizer([record["question"] for record in records], add_special_tokens=False)["input_ids"]
    for index, ids in enumerate(questions):
        if len(ids) >= room:
            raise RecordError(index, records[index].get("id", index),
                              f"the question is {len(ids)} tokens long, which leaves no room for the context "
                              f"within the model's max_length of {ctx.max_length} tokens (only the context is cut)")


question_context.requires = ("question_context",)
