"""Token tasks lose no word to truncation: long inputs become windows, merged back per word."""

from __future__ import annotations

from blurbkit.models.loading import default_model_dir, load_tokenizer
from blurbkit.models.transforms import TransformContext, tokens_as_is
from blurbkit.tasks.registry import get_dataset


def test_every_word_of_a_long_sentence_lands_in_a_window():
    tokenizer = load_tokenizer(default_model_dir())
    words = [f"acetyltransferase{i}" for i in range(60)] + ["\x07"]  # a word that tokenises to nothing
    examples = tokens_as_is([{"tokens": words}], TransformContext(tokenizer, max_length=32))
    assert len(examples) > 3
    assert all(len(ex["input_ids"]) <= 32 for ex in examples)
    covered = {w for ex in examples for w in ex["word_index"]}
    assert covered == set(range(len(words)))
    for ex in examples:  # the recorded position really is the word's first subword
        for pos, word in zip(ex["word_positions"], ex["word_index"], strict=True):
            piece = tokenizer.convert_ids_to_tokens(ex["input_ids"][pos])
            assert not piece.startswith("##")
            assert word == len(words) - 1 or words[word].startswith(piece)


def test_merge_takes_each_word_from_its_most_central_window():
    tokenizer = load_tokenizer(default_model_dir())
    spec = get_dataset("bc5chem")
    adapter = spec.task.codec(spec)
    words = ["aspirin"] * 40
    record = {"id": "x", "tokens": words, "tags": ["O"] * 40}
    examples = tokens_as_is([record], TransformContext(tokenizer, max_length=12))
    # predict B-Chemical from every window, except O from the first: words in the first
    # window's half that later windows also cover must come from a later (more central) window
    b = adapter.labels.index("B-Chemical")
    outputs = [[0] * len(ex["word_index"]) if n == 0 else [b] * len(ex["word_index"]) for n, ex in enumerate(examples)]
    merged = adapter.collect([record], examples, outputs)[0]
    assert len(merged) == 40
    first = examples[0]["word_index"]
    later = {w for ex in examples[1:] for w in ex["word_index"]}
    only_first = [w for w in first if w not in later]
    assert all(merged[w] == "O" for w in only_first)
    assert merged[first[-1]] == "B-Chemical"


def test_a_word_in_several_windows_takes_the_label_of_the_window_where_it_is_most_central():
    tokenizer = load_tokenizer(default_model_dir())
    spec = get_dataset("bc5chem")
    adapter = spec.task.codec(spec)
    record = {"id": "x", "tokens": ["aspirin"] * 40, "tags": ["O"] * 40}  # equal words: margins in words = in subwords
    examples = tokens_as_is([record], TransformContext(tokenizer, max_length=12))
    assert len(examples) >= 4
    # Neighbouring windows disagree, so the merged label tells which window each word was taken from.
    said = ["O" if n % 2 == 0 else "B-Chemical" for n in range(len(examples))]
    outputs = [[adapter.labels.index(said[n])] * len(ex["word_index"]) for n, ex in enumerate(examples)]
    merged = adapter.collect([record], examples, outputs)[0]
    checked = not_first = not_last = 0
    for word in range(40):
        seen = [(min(i, len(ex["word_index"]) - 1 - i), n) for n, ex in enumerate(examples)
                for i, w in enumerate(ex["word_index"]) if w == word]
        best = max(margin for margin, _ in seen)
        winners = {said[n] for margin, n in seen if margin == best}
        if len(seen) < 2 or len(winners) > 1:  # one window, or a tie between disagreeing windows
            continue
        assert merged[word] == winners.pop(), word
        checked += 1
        not_first += merged[word] != said[seen[0][1]]
        not_last += merged[word] != said[seen[-1][1]]
    assert checked >= 10 and not_first >= 3 and not_last >= 3  # neither "first window wins" nor "last wins" passes
